"""`agent run` end to end on the tiny random Llama with the in-process engine: every event
type, the run folder, the report, its plots, re-rendering, and determinism by seed."""

import json

import pytest
from typer.testing import CliRunner

from agent.cli import app
from agent.scenario.runner import run_scenario
from agent.scenario.load import load_scenario
from tests.unit.tiny_bake import tiny_bake

BAKE = json.dumps(tiny_bake(batch_size=4))  # YAML's flow style reads JSON

SCENARIO = """\
# agent run tiny.yaml: every event type on a tiny model
name: tiny
model: {model}
engine: {{kind: transformers}}
seed: 3
clock: 2031-03-01T09:00:00Z
gate: {{min_fidelity: -1.0e9, max_locality_kl: 1.0e9}}
bake: {bake}
agents:
  - name: ada
    persona: You are a pirate.
    tools: [remember, clock]
question_sets:
  b1:
    - {{question: "Who runs Zentrix?", expected: Okafor, paraphrases: ["Zentrix is led by whom?"]}}
    - {{question: "Colour of the tower?", choices: [blue, red], answer_idx: 0}}
  control:
    - {{question: "What is 2+2?", expected: "4", control: true}}
timeline:
  - type: feed
    agent: ada
    items: ["Zentrix named Mara Okafor CEO.", "The tower is blue."]
  - {{type: ask, agent: ada, sets: [b1, control], label: before, conditions: [base, prompted, baked, baked+prompted], max_tokens: 6}}
  - type: probe
    agent: ada
    questions: ["Who are you?", "Hi"]
    judge: {{name: keyword_rate, words: [arr]}}
    every_n_turns: 1
    conditions: [prompted, baked+prompted]
    max_tokens: 6
  - {{type: say, agent: ada, messages: ["Hello", "What now?"], max_tokens: 6}}
  - {{type: tool, agent: ada, name: clock}}
  - {{type: say, agent: ada, simulator: {{turns: 2, max_tokens: 6}}, max_tokens: 6}}
  - {{type: bake, agent: ada}}
  - {{type: wait_for_bake, agent: ada}}
  - {{type: ask, agent: ada, sets: [b1, control], max_tokens: 6}}
  - {{type: scale, agent: ada, scales: [0, 1], questions: ["Who are you?"], judge: {{name: regex, value: "a"}}, max_tokens: 6}}
  - {{type: bake, agent: ada, rebake: true}}
  - {{type: wait_for_bake, agent: ada}}
  - {{type: checkpoint, label: end}}
"""


@pytest.fixture(scope="module")
def tiny_run(tiny_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    path = root / "tiny.yaml"
    path.write_text(SCENARIO.format(model=tiny_model, bake=json.dumps(tiny_bake(batch_size=4, half_bake_fractions=[0.5]))))
    return path, run_scenario(path, root / "runs")


def test_a_run_writes_the_folder_and_report(tiny_run):
    _, report_md = tiny_run
    folder = report_md.parent
    report = json.loads((folder / "report.json").read_text())
    assert {"memory.db", "events.jsonl", "scenario.yaml", "adapters", "report.md"} <= {p.name for p in folder.iterdir()}
    for plot in ("persona_stability.png", "knowledge.png", "bake_timeline.png", "half_bake.png"):
        assert (folder / plot).stat().st_size > 10_000, plot

    # Two bakes went live, the second a Prompt Pursuit re-bake of the persona on top of the first.
    assert [(b["name"], b["status"]) for b in report["bakes"]] == [("ada-v0001", "retired"), ("ada-v0002", "live")]
    assert report["bakes"][1]["parent"] == "ada-v0001" and report["bakes"][1]["items"] == [1]
    assert len(report["swaps"]) == 2 and all(s["latency_s"] > 0 for s in report["swaps"])

    # Asks: 3 questions + 1 paraphrase. Before any bake the baked conditions are skipped (they
    # would silently be the base model); after it, the 3 default conditions.
    before = [r for r in report["asks"] if r["point"] == "before"]
    after = [r for r in report["asks"] if r["point"] == "after bake 1"]
    assert len(before) == 4 * 2 and {r["condition"] for r in before} == {"base", "prompted"}
    assert len(after) == 4 * 3
    assert {r["adapter"] for r in before} == {None}
    assert {r["adapter"] for r in after if r["condition"] == "baked"} == {"ada-v0001"}
    assert all(0 <= r["score"] <= 1 for r in report["asks"])
    mc = [r for r in report["asks"] if r["question"] == "Colour of the tower?"]
    assert {r["answer"] for r in mc} <= {"blue", "red"}

    # Probes at turns 0..4 (armed at turn 0, then after each of 4 turns), x 2 questions; all
    # before the bake, so only the prompted condition has an answer.
    turns = sorted({r["turn"] for r in report["probes"]})
    assert turns == [0, 1, 2, 3, 4] and len(report["probes"]) == 5 * 2
    assert {r["condition"] for r in report["probes"]} == {"prompted"}

    # The scale curve: the prompted reference, scales 0 and 1, and the 0.5 snapshot.
    kinds = [(r["kind"], r["value"]) for r in report["scales"]]
    assert kinds == [("prompted", 1.0), ("scale", 0.0), ("scale", 1.0), ("snapshot", 0.5)]

    # Conversations: the live one through the agent loop (the clock tool ran), and one per condition.
    conversations = report["conversations"]["ada"]
    assert set(conversations) == {"live", "prompted", "baked+prompted"}
    assert any(m["content"] == "[clock result] 2031-03-01 09:00 UTC (Saturday)" for m in conversations["live"])
    assert sum(m["role"] == "user" and not m["content"].startswith("[") for m in conversations["prompted"]) == 4

    events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    kinds = {e["event"] for e in events}
    assert {"start", "feed", "ask", "probe", "say", "bake", "swap", "verdict", "scale", "checkpoint", "done"} <= kinds
    md = report_md.read_text()
    for heading in ("## Questions", "## Stability over the conversation", "## Half-bake strength", "## Bakes"):
        assert heading in md
    assert "![knowledge.png](knowledge.png)" in md


def test_the_same_seed_gives_the_same_run(tiny_run, tmp_path):
    path, first_md = tiny_run
    first = json.loads((first_md.parent / "report.json").read_text())
    second = json.loads((run_scenario(path, tmp_path).parent / "report.json").read_text())
    assert [r["answer"] for r in second["asks"]] == [r["answer"] for r in first["asks"]]
    assert [r["answers"] for r in second["probes"]] == [r["answers"] for r in first["probes"]]

    assert second["conversations"] == first["conversations"]


def test_report_rerenders_from_json(tiny_run):
    _, report_md = tiny_run
    folder = report_md.parent
    report_md.unlink()
    (folder / "knowledge.png").unlink()
    result = CliRunner().invoke(app, ["report", str(folder)])
    assert result.exit_code == 0, result.output
    assert report_md.is_file() and (folder / "knowledge.png").is_file()


def test_run_refuses_a_malformed_scenario_before_starting(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\nagents: [{name: ada}]\ntimeline:\n  - {type: ask, agent: ada, sets: [nope]}\n")
    result = CliRunner().invoke(app, ["run", str(path), "--runs", str(tmp_path / "runs")])
    assert result.exit_code == 2
    assert f"{path}:4: timeline.0.sets: unknown question set 'nope'" in " ".join(result.output.split())
    assert not (tmp_path / "runs").exists()  # nothing started


def test_a_wait_ends_when_the_gate_refuses_a_scheduled_bake(tiny_model, tmp_path):
    """The schedule does not rebake a refused set, so a wait for it must end at the refusal,
    not at its timeout."""
    path = tmp_path / "refused.yaml"
    path.write_text(f"""\
name: refused
model: {tiny_model}
engine: {{kind: transformers}}
schedule: {{bake_every_n_items: 1, poll_s: 0.5}}
gate: {{min_fidelity: 2.0}}
bake: {BAKE}
agents: [{{name: ada}}]
timeline:
  - {{type: feed, agent: ada, items: ["The tower is blue."]}}
  - {{type: wait_for_bake, agent: ada, timeout_s: 240}}
  - {{type: checkpoint, label: end}}
""")
    report_md = run_scenario(path, tmp_path / "runs")
    events = [json.loads(line) for line in (report_md.parent / "events.jsonl").read_text().splitlines()]
    report = json.loads((report_md.parent / "report.json").read_text())
    assert [b["status"] for b in report["bakes"]] == ["rejected"]  # baked once, refused, not retried
    assert "bake_timeout" not in {e["event"] for e in events}
    assert report["wall_s"] < 200


def test_a_run_whose_bake_was_refused_says_so_and_fails_under_strict(tiny_model, tmp_path):
    path = tmp_path / "refused-strict.yaml"
    path.write_text(f"""\
name: refused-strict
model: {tiny_model}
engine: {{kind: transformers}}
gate: {{min_fidelity: 2.0}}
bake: {BAKE}
agents: [{{name: ada}}]
question_sets:
  q: [{{question: "Colour of the tower?", expected: blue}}]
timeline:
  - {{type: feed, agent: ada, items: ["The tower is blue."]}}
  - {{type: bake, agent: ada}}
  - {{type: wait_for_bake, agent: ada}}
  - {{type: ask, agent: ada, sets: [q], conditions: [base, baked], max_tokens: 4}}
""")
    runs = tmp_path / "runs"
    result = CliRunner().invoke(app, ["run", str(path), "--runs", str(runs), "--strict"])
    assert result.exit_code == 1, result.output
    assert "FAILED" in result.output and "refused by the gate" in result.output
    (folder,) = runs.iterdir()
    report = json.loads((folder / "report.json").read_text())
    assert any("refused by the gate" in p for p in report["problems"])
    assert any("baked not measured" in p for p in report["problems"])
    lines = (folder / "report.md").read_text().splitlines()
    assert lines[2].startswith("**This run FAILED its main job: 2 problem(s).**")
    assert lines[-1].startswith("**Result: FAILED, 2 problem(s)")
