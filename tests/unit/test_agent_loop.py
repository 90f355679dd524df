"""The agent loop, driven by a scripted fake model (no LLM), and the tools."""

import datetime as dt
import json
from dataclasses import dataclass

import pytest

from agent.serving.engine import EngineError
from agent.loop import Agent, parse_tool_calls
from memory import MemoryStore
from tools import ToolContext, build_tools
from tools.registry import read_headlines


@dataclass
class FakeReply:
    text: str
    prompt_tokens: int = 10
    completion_tokens: int = 5
    adapter: str | None = "ada-v0001"


class ScriptedModel:
    def __init__(self, *replies: str) -> None:
        self.replies, self.prompts = list(replies), []

    def __call__(self, messages):
        self.prompts.append(messages)
        return FakeReply(self.replies.pop(0))


@pytest.fixture
def ctx(tmp_path):
    store = MemoryStore(tmp_path / "m.db")
    store.create_agent("ada")
    fixed = dt.datetime(2031, 5, 6, 7, 8, tzinfo=dt.timezone.utc)
    return ToolContext(store=store, agent="ada", now=lambda: fixed)


def test_tool_call_then_final_answer(ctx):
    model = ScriptedModel("CALL clock {}", "It is Tuesday.")
    agent = Agent(model, build_tools(["clock"], ctx))
    steps = agent.run("What day is it?")
    assert [s.number for s in steps] == [1, 2]
    assert steps[0].tool_calls[0].name == "clock"
    assert steps[0].observations[0].content == "2031-05-06 07:08 UTC (Tuesday)"
    assert steps[1].output == "It is Tuesday." and steps[1].tool_calls == ()
    assert steps[1].adapter == "ada-v0001" and steps[1].prompt_tokens == 10
    # The second prompt is built from the stored steps: tool instructions, question, call, result.
    second = model.prompts[1]
    assert second[0]["role"] == "system" and "CALL <tool>" in second[0]["content"]
    assert second[-1] == {"role": "user", "content": "[clock result] 2031-05-06 07:08 UTC (Tuesday)"}


def test_tool_errors_become_observations(ctx):
    model = ScriptedModel("CALL recall {}", "CALL nosuch {}", 'CALL recall {"query": oops}', "Sorry.")
    agent = Agent(model, build_tools(["recall"], ctx), max_steps=5)
    steps = agent.run("What do you remember?")
    errors = [s.observations[0].content for s in steps[:3]]
    assert errors[0].startswith("error: ") and "query" in errors[0]
    assert "unknown tool 'nosuch'" in errors[1]
    assert "not a JSON object" in errors[2]
    assert steps[-1].output == "Sorry."


def test_engine_errors_raise(ctx):
    def broken(messages):
        raise EngineError("vLLM /v1/chat/completions answered 500")

    with pytest.raises(EngineError):
        Agent(broken).run("Hi")


def test_max_steps_bounds_a_looping_model(ctx):
    agent = Agent(ScriptedModel(*["CALL clock {}"] * 3), build_tools(["clock"], ctx), max_steps=3)
    assert len(agent.run("Loop forever")) == 3


def test_remember_and_recall_go_through_the_store(ctx):
    tools = build_tools(["remember", "recall"], ctx)
    agent = Agent(ScriptedModel(), tools)
    said = agent.use_tool("remember", {"text": "The office moved to Pier 9.", "kind": "fact"})
    (item,) = ctx.store.items("ada")
    # Tool-written memories wait for an operator before they reach context or weights.
    assert (item.trust, item.source, item.status) == ("tool", "tool:remember", "review")
    assert "waits for an operator's approval" in said.observations[0].content
    step = agent.use_tool("recall", {"query": "Pier"})
    assert "(fact, review) The office moved to Pier 9." in step.observations[0].content
    again = agent.use_tool("remember", {"text": "the office moved to pier 9.", "kind": "fact"})
    assert "already remembered" in again.observations[0].content
    bad = agent.use_tool("remember", {"text": "", "kind": "fact"})
    assert bad.observations[0].content.startswith("error:") and "empty" in bad.observations[0].content


def test_news_feed_reads_jsonl_rss_and_folders(tmp_path, ctx):
    feed = tmp_path / "feed"
    feed.mkdir()
    (feed / "a.jsonl").write_text(json.dumps({"title": "Zentrix names new CEO", "summary": "Mara Okafor"}) + "\n")
    (feed / "b.rss").write_text(
        "<rss><channel><item><title>Bridge opens</title><description>Glasswing</description>"
        "<pubDate>Mon</pubDate></item></channel></rss>")
    assert [h["title"] for h in read_headlines(feed)] == ["Zentrix names new CEO", "Bridge opens"]
    ctx.news_path = feed
    out = build_tools(["news_feed"], ctx)["news_feed"].invoke({"limit": 5})
    assert "- Zentrix names new CEO: Mara Okafor" in out and "- Bridge opens: Glasswing" in out
    (tmp_path / "bad.jsonl").write_text('{"summary": "no title"}\n')
    with pytest.raises(ValueError, match="bad.jsonl:1: a headline is an object with a 'title'"):
        read_headlines(tmp_path / "bad.jsonl")


def test_unknown_tool_name_in_config_is_an_error(ctx):
    with pytest.raises(ValueError, match="unknown tool"):
        build_tools(["clock", "teleport"], ctx)


def test_call_parsing():
    calls = parse_tool_calls('Let me check.\nCALL remember {"text": "x"}\nCALL clock', 1)
    assert [(c.name, c.args) for c in calls] == [("remember", {"text": "x"}), ("clock", {})]
    assert parse_tool_calls("No tools here. I CALL you later.", 1) == []
