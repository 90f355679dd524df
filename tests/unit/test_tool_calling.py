"""OpenAI tool calling (for models larger than the 135M default): the loop, the runtime, the
agents' endpoint and the LangChain model, over a scripted engine that records what reaches it.
The real path on vLLM is in tests/integration/test_runtime_vllm.py."""

import json

import httpx
import pytest
from langchain_core.messages import HumanMessage
from pydantic import ValidationError

from agent.runtime.config import EngineConfig, RuntimeConfig
from agent.serving.engine import Completion, EngineError, NativeToolCall
from agent.serving.vllm import VLLMSettings, free_port, vllm_command
from agent.langchain_model import PromptbakeChatModel
from agent.loop import Agent
from agent.runtime.runtime import Runtime
from agent.serving.server import AgentServer
from tools import ToolContext, build_tools


class ScriptedEngine:
    """Answers from a script: each entry is a text, a list of (name, arguments JSON), or an
    exception to raise."""

    def __init__(self, *script) -> None:
        self.script, self.requests = list(script), []

    def chat(self, messages, adapter, params, tools=None, tool_choice="auto"):
        self.requests.append({"messages": messages, "tools": tools, "tool_choice": tool_choice})
        entry = self.script.pop(0)
        if isinstance(entry, Exception):
            raise entry
        if isinstance(entry, str):
            return Completion(entry, adapter, 20, 5)
        calls = tuple(NativeToolCall(f"call-{len(self.requests)}-{i}", name, args) for i, (name, args) in enumerate(entry))
        return Completion("", adapter, 20, 5, tool_calls=calls)

    def adapters(self):
        return []

    def health(self):
        return True

    def close(self):
        pass


@pytest.fixture
def runtime(tmp_path):
    def make(*script):
        config = RuntimeConfig(home=tmp_path, engine={"tool_calling": "openai", "tool_choice": "auto", "url": "http://x"})
        rt = Runtime(config, ScriptedEngine(*script))
        rt.store.create_agent("ada")
        rt.store.add("ada", "You are Ada, a terse archivist.", "persona")
        rt.store.add("ada", "The archive moved to Pier 9.", "news")
        return rt
    return make


def test_the_loop_sends_tool_specs_and_returns_results_as_tool_messages(runtime):
    rt = runtime([("remember", json.dumps({"text": "The reading room opens at 8.", "kind": "fact"}))], "Noted.")
    tools = build_tools(["remember", "clock"], ToolContext(store=rt.store, agent="ada"))
    agent = Agent(lambda m, **kw: rt.chat("ada", m, **kw), tools, tool_calling="openai")
    steps = agent.run("Remember that the reading room opens at 8.")

    assert [len(s.tool_calls) for s in steps] == [1, 0] and steps[-1].output == "Noted."
    assert steps[0].observations[0].content.startswith("remembered as item")
    remembered = [it for it in rt.store.items("ada") if it.source == "tool:remember"]
    assert [(it.text, it.trust) for it in remembered] == [("The reading room opens at 8.", "tool")]

    first, second = rt.engine.requests
    assert {t["function"]["name"] for t in first["tools"]} == {"remember", "clock"}
    assert first["tools"][0]["function"]["parameters"]["required"] == ["text"]
    assert first["tool_choice"] == "auto"
    # No text-format instructions in openai mode; persona as system prompt, news in front of the
    # last user turn, and the tool turn passed through as OpenAI messages.
    assert "CALL <tool>" not in json.dumps(second["messages"])
    system, user, call, result = second["messages"]
    assert system == {"role": "system", "content": "You are Ada, a terse archivist."}
    assert user["role"] == "user" and "The archive moved to Pier 9." in user["content"]
    assert user["content"].endswith("Remember that the reading room opens at 8.")
    assert call["role"] == "assistant" and call["tool_calls"][0]["function"]["name"] == "remember"
    assert json.loads(call["tool_calls"][0]["function"]["arguments"])["kind"] == "fact"
    assert result["role"] == "tool" and result["tool_call_id"] == call["tool_calls"][0]["id"]
    assert result["content"].startswith("remembered as item")


def test_required_starts_a_turn_and_its_last_step_is_sent_with_tool_choice_none(runtime):
    rt = runtime([("clock", "{}")], [("clock", "{}")], "It is late.")
    agent = Agent(lambda m, **kw: rt.chat("ada", m, **kw), build_tools(["clock"], ToolContext()),
                  max_steps=3, tool_calling="openai", tool_choice="required")
    steps = agent.run("What time is it?")
    assert [r["tool_choice"] for r in rt.engine.requests] == ["required", "auto", "none"]
    assert steps[-1].output == "It is late."


def test_bad_native_calls_become_observations(runtime):
    rt = runtime([("clock", "{not json"), ("nosuch", "{}")], "Sorry.")
    agent = Agent(lambda m, **kw: rt.chat("ada", m, **kw), build_tools(["clock"], ToolContext()),
                  tool_calling="openai")
    steps = agent.run("Time?")
    first, second = steps[0].observations  # two calls in one reply, two observations
    assert "not a JSON object" in first.content and "unknown tool 'nosuch'" in second.content
    assert steps[-1].output == "Sorry." and len(steps) == 2
    # The model sees its own malformed arguments again, next to the error, under the same id.
    call = rt.engine.requests[1]["messages"][-3]
    assert [c["function"]["arguments"] for c in call["tool_calls"]] == ["{}", "{not json"]
    ids = {c["id"] for c in call["tool_calls"]}
    assert {m["tool_call_id"] for m in rt.engine.requests[1]["messages"][-2:]} == ids


def test_the_endpoint_passes_tools_through_and_returns_tool_calls(runtime):
    rt = runtime([("clock", "{}")], "It is noon.")
    server = AgentServer(rt, port=free_port()).start()
    try:
        tools = [{"type": "function", "function": {"name": "clock", "parameters": {"type": "object", "properties": {}}}}]
        body = {"model": "ada", "messages": [{"role": "user", "content": "Time?"}], "tools": tools}
        first = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=30).json()["choices"][0]
        assert first["finish_reason"] == "tool_calls"
        call = first["message"]["tool_calls"][0]
        assert call["function"] == {"name": "clock", "arguments": "{}"}
        history = [*body["messages"], first["message"], {"role": "tool", "tool_call_id": call["id"], "content": "12:00"}]
        second = httpx.post(f"{server.url}/v1/chat/completions", json={**body, "messages": history}, timeout=30).json()
        assert second["choices"][0]["message"] == {"role": "assistant", "content": "It is noon."}
        assert rt.engine.requests[1]["messages"][-1] == {"role": "tool", "tool_call_id": call["id"], "content": "12:00"}
        bad = httpx.post(f"{server.url}/v1/chat/completions", timeout=30,
                         json={"model": "ada", "messages": [{"role": "tool", "content": "x"}]})
        assert bad.status_code == 400 and "tool_call_id" in bad.json()["error"]["message"]
        for tools_field in ([{"x": 1}], [{"type": "function", "function": "clock"}]):
            bad = httpx.post(f"{server.url}/v1/chat/completions", timeout=30, json={**body, "tools": tools_field})
            assert bad.status_code == 400 and "tools" in bad.json()["error"]["message"]
        bad = httpx.post(f"{server.url}/v1/chat/completions", timeout=30, json={**body, "tool_choice": "always"})
        assert bad.status_code == 400 and "tool_choice" in bad.json()["error"]["message"]
    finally:
        server.stop()


def test_the_langchain_model_binds_tools(runtime):
    rt = runtime([("clock", "{}")], [("clock", "[1]")], "plain")
    chat = PromptbakeChatModel(runtime=rt, agent="ada")
    bound = chat.bind_tools(build_tools(["clock"], ToolContext()).values(), tool_choice="clock")
    reply = bound.invoke([HumanMessage("What time is it?")])
    assert reply.tool_calls == [{"name": "clock", "args": {}, "id": "call-1-0", "type": "tool_call"}]
    assert rt.engine.requests[0]["tool_choice"] == {"type": "function", "function": {"name": "clock"}}
    assert rt.engine.requests[0]["tools"][0]["function"]["name"] == "clock"
    malformed = bound.invoke("again")
    assert malformed.tool_calls == [] and malformed.invalid_tool_calls[0]["args"] == "[1]"
    assert chat.invoke("no tools").content == "plain" and rt.engine.requests[2]["tools"] is None
    # LangChain's own spellings (with_structured_output binds with "any").
    assert chat.bind_tools([], tool_choice="any").kwargs["tool_choice"] == "required"
    assert chat.bind_tools([], tool_choice=False).kwargs["tool_choice"] == "none"


def test_tool_calling_config_and_server_flags():
    with pytest.raises(ValidationError, match="needs kind: vllm"):
        EngineConfig(kind="transformers", tool_calling="openai", tool_call_parser="hermes")
    with pytest.raises(ValidationError, match="needs tool_call_parser"):
        EngineConfig(tool_calling="openai", tool_choice="required")
    assert EngineConfig(tool_calling="openai", url="http://gpu-box:8000").tool_call_parser is None  # attached
    command = vllm_command("/m", 8000, VLLMSettings(tool_call_parser="hermes", chat_template="/t.jinja"))
    joined = " ".join(command)
    assert "--enable-auto-tool-choice --tool-call-parser hermes" in joined and "--chat-template /t.jinja" in joined
    assert "--exclude-tools-when-tool-choice-none" in joined  # a turn's last step cannot call
    assert "--tool-call-parser" not in " ".join(vllm_command("/m", 8000, VLLMSettings()))


def test_the_in_process_engine_refuses_native_tools_clearly(tiny_model):
    from agent.serving.hf import TransformersEngine

    with pytest.raises(EngineError, match="no OpenAI tool calling"):
        TransformersEngine(str(tiny_model)).chat([{"role": "user", "content": "Hi"}], None,
                                                 tools=[{"type": "function", "function": {"name": "clock"}}])
