"""A short scenario end to end on the real model and a real vLLM server: feed, ask, bake in a
worker, hot swap, ask again closed-book, a probed conversation, and the report."""

import json

import pytest

from agent.scenario.runner import run_scenario

pytestmark = pytest.mark.integration

SCENARIO = """\
# Command: agent run short.yaml
# Purpose: the integration test's short run
name: short
seed: 0
gate: {min_fidelity: 0.0, max_locality_kl: 10}
# The session's vLLM server (tests/integration/conftest.py), attached by URL: one server at a time.
engine: {url: ENGINE_URL}
bake: {num_eval_queries: 6, num_control_queries: 4}
agents:
  - name: sol
    tools: [recall]
question_sets:
  news:
    - {question: "Who is the chief executive officer of Zentrix Robotics?", expected: Okafor}
  mc:  # through vLLM's prompt_logprobs, batched with the other requests of the ask
    - question: "Who is the chief executive officer of Zentrix Robotics?"
      choices: [Mara Okafor, Elena Karvonen, James Whitfield, Priya Natarajan]
      answer_idx: 0
timeline:
  - type: feed
    agent: sol
    items: ["Zentrix Robotics named Mara Okafor as its new chief executive officer on Monday."]
  - {type: ask, agent: sol, label: pending, sets: [news, mc], conditions: [base, prompted]}
  - type: probe
    agent: sol
    question: "Who runs Zentrix Robotics?"
    judge: {name: contains, value: Okafor}
    at_turns: [2]
    conditions: [baked, baked+prompted]
  - {type: bake, agent: sol}
  - {type: say, agent: sol, messages: ["Hello!"], max_tokens: 16}
  - {type: wait_for_bake, agent: sol}
  - {type: ask, agent: sol, label: baked, sets: [news, mc], conditions: [base, baked]}
  - {type: say, agent: sol, messages: ["What is new at Zentrix?"], max_tokens: 24}
  - {type: tool, agent: sol, name: recall, args: {query: Zentrix}}
"""


def test_short_scenario_on_real_vllm(engine, tmp_path):
    path = tmp_path / "short.yaml"
    path.write_text(SCENARIO.replace("ENGINE_URL", engine.url))
    report_md = run_scenario(path, tmp_path / "runs")
    report = json.loads((report_md.parent / "report.json").read_text())

    def score(point, condition, mc=False):
        return next(r["score"] for r in report["asks"] if r["point"] == point and r["condition"] == condition
                    and (r["expected"] == "Mara Okafor") == mc)

    # Multiple choice by log-likelihood through vLLM's prompt_logprobs: right in context.
    assert score("pending", "prompted", mc=True) == 1.0
    # The fictional name is never produced without the news (greedy generation).
    assert score("pending", "base") == 0.0 and score("baked", "base") == 0.0
    assert report["bakes"][0]["status"] == "live" and report["swaps"][0]["adapter"] == "sol-v0001"
    # Closed-book, from the adapter alone: the right option is the likeliest (benchmarks' scoring;
    # whether greedy free text names it too depends on seed and dtype, see helpers.likeliest_name).
    assert score("baked", "baked", mc=True) == 1.0
    # Scored through the adapter too, while generation requests were in flight.
    def mc_row(condition):
        return next(r for r in report["asks"] if r["point"] == "baked" and r["condition"] == condition
                    and r["expected"] == "Mara Okafor")

    def margin(row):  # log-likelihood of the right option over the best wrong one
        right, *wrong = row["logliks"]
        return right - max(wrong)

    assert mc_row("baked")["adapter"] == "sol-v0001" and mc_row("base")["adapter"] is None
    assert margin(mc_row("baked")) > margin(mc_row("base"))  # baking raised the fact's likelihood
    # The conversation went on while the worker baked; the probe at turn 2 used the new adapter.
    probes = [r for r in report["probes"] if r["turn"] == 2]
    assert {r["adapter"] for r in probes} == {"sol-v0001"}
    recall = [m for m in report["conversations"]["sol"]["live"] if m["content"].startswith("[recall result]")]
    assert recall and "baked" in recall[0]["content"]
    assert (report_md.parent / "knowledge.png").is_file() and (report_md.parent / "bake_timeline.png").is_file()
