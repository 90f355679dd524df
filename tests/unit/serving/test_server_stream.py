"""``stream: true`` on the agents' endpoint: server-sent ``chat.completion.chunk`` events cut
from the finished completion, read with the official ``openai`` client and as raw SSE. Tool-call
streams and engine errors use a scripted engine; text streams use the tiny model."""

import json

import httpx
import openai
import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState

from agent.runtime.config import RuntimeConfig
from agent.serving.engine import Completion, EngineError, EngineUnavailable, NativeToolCall
from agent.serving.vllm import free_port
from agent.runtime.runtime import Runtime
from agent.serving.server import AgentServer, stream_chunks, text_deltas
from test_server import server  # noqa: F401 - the same module-scoped endpoint fixture
from tests.unit.test_tool_calling import ScriptedEngine

HI = [{"role": "user", "content": "Hi there"}]
HEAD = {"id": "chatcmpl-1", "created": 0, "model": "ada", "system_fingerprint": "base"}


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="k3y", max_retries=0, timeout=60)


@pytest.fixture
def scripted(tmp_path):
    """A server over a scripted engine; ``scripted(*script)`` starts it."""
    servers = []

    def start(*script) -> AgentServer:
        config = RuntimeConfig(home=tmp_path, engine={"tool_calling": "openai", "url": "http://x"})
        runtime = Runtime(config, ScriptedEngine(*script))
        runtime.store.create_agent("ada")
        servers.append(AgentServer(runtime, port=free_port()).start())
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def test_the_streamed_deltas_concatenate_to_the_plain_answer(client):
    ask = {"model": "ada", "messages": HI, "max_tokens": 12, "temperature": 0, "seed": 0}
    plain = client.chat.completions.create(**ask)
    chunks = list(client.chat.completions.create(**ask, stream=True, stream_options={"include_usage": True}))

    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert plain.choices[0].message.content and text == plain.choices[0].message.content
    finish, usage = chunks[-2], chunks[-1]
    assert finish.choices[0].finish_reason == plain.choices[0].finish_reason
    assert usage.choices == [] and usage.usage == plain.usage
    assert len({c.id for c in chunks}) == 1 and all(c.object == "chat.completion.chunk" for c in chunks)
    # Without include_usage there is no usage chunk: the finish chunk is the last.
    bare = list(client.chat.completions.create(**ask, stream=True))
    assert bare[-1].choices[0].finish_reason == plain.choices[0].finish_reason
    assert all(c.usage is None for c in bare)


def test_the_raw_stream_is_sse_ending_in_done_and_errors_stay_json(server):
    auth = {"Authorization": "Bearer k3y"}
    body = {"model": "ada", "messages": HI, "max_tokens": 6, "temperature": 0, "stream": True}
    raw = httpx.post(f"{server.url}/v1/chat/completions", json=body, headers=auth, timeout=60)
    assert raw.status_code == 200 and raw.headers["content-type"].startswith("text/event-stream")
    events = raw.text.split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    assert all(e.startswith("data: ") for e in events[:-1])
    chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-2]]
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    # An unknown agent is found before the stream starts: a JSON 404, not an empty stream.
    unknown = httpx.post(f"{server.url}/v1/chat/completions", json={**body, "model": "bob"}, headers=auth, timeout=60)
    assert unknown.status_code == 404 and unknown.headers["content-type"] == "application/json"
    assert "unknown agent" in unknown.json()["error"]["message"]


def test_tool_calls_stream_as_deltas_and_engine_errors_stay_json(scripted):
    server = scripted([("clock", "{}"), ("remember", '{"text": "Pier 9"}')],
                      EngineUnavailable("restarting"), EngineError("vLLM said 500"))
    tools = [{"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}
             for name in ("clock", "remember")]
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="none", max_retries=0, timeout=30)
    ask = {"model": "ada", "messages": HI, "tools": tools}

    # The official client's own accumulator turns the chunks back into one completion.
    state = ChatCompletionStreamState()
    for chunk in client.chat.completions.create(**ask, stream=True):
        state.handle_chunk(chunk)
    choice = state.get_final_completion().choices[0]
    assert choice.finish_reason == "tool_calls"
    assert [(c.id, c.function.name, c.function.arguments) for c in choice.message.tool_calls] == [
        ("call-1-0", "clock", "{}"), ("call-1-1", "remember", '{"text": "Pier 9"}')]

    with pytest.raises(openai.APIStatusError) as down:
        client.chat.completions.create(**ask, stream=True)
    assert down.value.status_code == 503 and down.value.response.headers["retry-after"] == "5"
    with pytest.raises(openai.APIStatusError) as failed:
        client.chat.completions.create(**ask, stream=True)
    assert failed.value.status_code == 502 and "vLLM said 500" in failed.value.message


@pytest.mark.parametrize("text", ["", "word", "  ", " Hello,  world!\nHow are\tyou? ", "a b c d"])
def test_text_deltas_concatenate_exactly(text):
    pieces = text_deltas(text)
    assert "".join(pieces) == text and all(pieces)
    assert len(pieces) == len(text.split()) or not text.split()


def test_the_chunks_of_a_completion_with_text_and_tool_calls():
    completion = Completion("Let me check.", "ada-v0001", 11, 7,
                            tool_calls=(NativeToolCall("call-a", "clock", "{}"),
                                        NativeToolCall("call-b", "remember", '{"text": "x"}')))
    chunks = stream_chunks(completion, HEAD, "tool_calls", include_usage=True)
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas == [
        {"role": "assistant", "content": ""}, {"content": "Let "}, {"content": "me "}, {"content": "check."},
        {"tool_calls": [{"index": 0, "id": "call-a", "type": "function",
                         "function": {"name": "clock", "arguments": "{}"}}]},
        {"tool_calls": [{"index": 1, "id": "call-b", "type": "function",
                         "function": {"name": "remember", "arguments": '{"text": "x"}'}}]},
        {}]
    assert [c["choices"][0]["finish_reason"] for c in chunks[:-1]] == [None] * 6 + ["tool_calls"]
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
    assert all({**c, **HEAD} == c and c["object"] == "chat.completion.chunk" for c in chunks)
