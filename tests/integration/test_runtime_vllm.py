"""The runtime on a real vLLM server with the real model: memory -> bake -> hot swap."""

import os
import signal
import time

import pytest

from agent.runtime.config import RuntimeConfig
from agent.serving.engine import EngineError, SamplingParams
from agent.serving.vllm import VLLMEngine, VLLMSettings
from agent.runtime.runtime import Runtime
from agent.runtime.worker import spawn_worker
from memory import MemoryInputError
from .helpers import QUICK_BAKE, SMALL_BAKE, likeliest_name

pytestmark = pytest.mark.integration

NEWS = "Zentrix Robotics named Mara Okafor as its new chief executive officer on Monday."
QUESTION = [{"role": "user", "content": "Who is the chief executive officer of Zentrix Robotics?"}]
GREEDY = SamplingParams(temperature=0.0, max_tokens=40)


def test_news_moves_from_context_to_weights_and_a_second_agent_keeps_its_own(engine, tmp_path):
    config = RuntimeConfig(home=tmp_path, bake=SMALL_BAKE, gate={"min_fidelity": 0.0, "max_locality_kl": 10})
    runtime = Runtime.open(config, engine)
    for name in ("ada", "ana"):
        runtime.store.create_agent(name)
    runtime.store.add("ada", NEWS, "news", source="test", trust="operator")
    bridge = "The city of Port Avalon opened the Glasswing Bridge, designed by Tomas Reyes."
    bridge_q = [{"role": "user", "content": "Who designed the Glasswing Bridge in Port Avalon?"}]
    runtime.store.add("ana", bridge, "news")  # ana keeps hers pending (context)

    pending = runtime.chat("ada", QUESTION, GREEDY).text
    assert "Okafor" in pending  # 1. right while pending, from context

    runtime.bake("ada")  # 2. the worker process bakes; 3. the adapter is swapped in
    live = runtime.store.live("ada")
    assert live is not None and live.name == "ada-v0001"
    assert runtime.live_adapter("ada") in engine.adapters()
    assert [i.status for i in runtime.store.items("ada")] == ["baked"]
    assert runtime.messages_for("ada", QUESTION) == QUESTION  # baked items left the context

    question = QUESTION[0]["content"]
    assert likeliest_name(engine, None, question) != "Okafor"  # 4. the base model does not know it
    # 5. still right with the item out of context: the adapter alone makes it the likeliest name
    assert likeliest_name(engine, runtime.live_adapter("ada"), question) == "Okafor"
    base = runtime.chat("ada", QUESTION, GREEDY, adapter=False).text
    assert "Okafor" not in base  # the base model never produces the fictional name

    # 6. The second agent on the same server: its own memory and (no) adapter, nothing leaks.
    assert runtime.live_adapter("ana") is None
    assert "Okafor" not in runtime.chat("ana", QUESTION, GREEDY).text  # nothing of ada's
    assert "Reyes" in runtime.chat("ana", bridge_q, GREEDY).text       # hers, from context
    assert "Reyes" not in runtime.chat("ada", bridge_q, GREEDY).text   # no leak into ada
    assert [i.status for i in runtime.store.items("ana")] == ["pending"]


def test_kill_9_mid_bake_loses_nothing(engine, tmp_path):
    # Long enough (60 steps) that the kill lands mid-bake; short enough for the suite.
    config = RuntimeConfig(home=tmp_path, bake={**QUICK_BAKE, "min_steps": 60}, lease_s=5,
                           gate={"min_fidelity": -1e9, "max_locality_kl": 1e9})  # crash safety, not quality
    runtime = Runtime.open(config, engine)
    runtime.store.create_agent("kim")
    item = runtime.store.add("kim", "The Lumen Prize for 2031 went to the poet Ines Varga.", "news").item

    worker = spawn_worker(config, "kim")
    deadline = time.monotonic() + 120
    while runtime.store.get(item.id).status != "baking" and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(3)  # mid-bake: sampling/training under way
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()

    assert runtime.store.adapters("kim") == []  # nothing half-written got registered
    time.sleep(config.lease_s + 0.5)
    runtime.bake("kim")  # the claim expires the dead lease; the next bake succeeds
    assert runtime.store.get(item.id).status == "baked"
    assert runtime.store.live("kim").name == "kim-v0001"
    assert "failed" in [r.status for r in runtime.store.runs("kim")]


def test_bad_input_changes_nothing(engine, tmp_path):
    runtime = Runtime.open(RuntimeConfig(home=tmp_path, max_item_chars=50), engine)
    runtime.store.create_agent("bo")
    for text in ["", "x" * 51, "ctrl\x1bchar"]:
        with pytest.raises(MemoryInputError):
            runtime.store.add("bo", text, "fact")
    assert runtime.store.add("bo", "Fine fact.", "fact").duplicate is False
    assert runtime.store.add("bo", "fine  FACT.", "fact").duplicate is True
    with pytest.raises(MemoryInputError, match="unknown agent"):
        runtime.chat("nobody", QUESTION)
    with pytest.raises(MemoryInputError, match="no adapter"):
        runtime.rollback("bo", "bo-v0042")
    assert len(runtime.store.items("bo")) == 1


def test_attach_to_a_running_server_by_url(engine):
    attached = VLLMEngine.attach(engine.url)
    assert attached.health() and attached.process is None
    assert attached.chat(QUESTION, None, SamplingParams(max_tokens=4)).completion_tokens > 0
    with pytest.raises(EngineError, match="no healthy vLLM server"):
        VLLMEngine.attach("http://127.0.0.1:9")


def test_a_vllm_that_cannot_start_names_the_cause(tmp_path):
    with pytest.raises(EngineError, match="exited with code|did not become healthy") as info:
        VLLMEngine.start(tmp_path / "no-such-model", tmp_path / "vllm.log",
                         VLLMSettings(startup_timeout_s=120))
    assert "vllm.log" in str(info.value)


def test_openai_tool_calling_runs_a_tool_and_answers(engine, tmp_path):
    """The OpenAI tool-calling path end to end on vLLM: tools as JSON-schema specs, a forced
    call (tool_choice required), its result sent back as a tool message, then an answer (the
    last step goes with tool_choice none)."""
    import datetime as dt

    from agent.loop import Agent
    from tools import ToolContext, build_tools

    config = RuntimeConfig(home=tmp_path, engine={"url": engine.url, "tool_calling": "openai", "tool_choice": "required"})
    runtime = Runtime.open(config, engine)
    runtime.store.create_agent("tia")
    fixed = dt.datetime(2031, 5, 6, 7, 8, tzinfo=dt.timezone.utc)
    tools = build_tools(["clock"], ToolContext(store=runtime.store, agent="tia", now=lambda: fixed))
    agent = Agent(lambda m, **kw: runtime.chat("tia", m, SamplingParams(max_tokens=120), **kw), tools,
                  max_steps=2, tool_calling="openai", tool_choice="required")
    steps = agent.run("What time is it?")

    assert len(steps) == 2
    (call,) = steps[0].tool_calls
    assert call.name == "clock"  # the only tool: a forced call must name it
    (observation,) = steps[0].observations
    assert observation.tool_call_id == call.id
    # The 135M model may write malformed arguments (vLLM 0.32 does not hold it to the schema);
    # then the observation is exactly that error, otherwise the clock's reading.
    expected = f"error: {call.error}" if call.error else "2031-05-06 07:08 UTC (Tuesday)"
    assert observation.content == expected
    assert steps[1].tool_calls == () and steps[1].output.strip()  # vLLM took the tool turn and answered
