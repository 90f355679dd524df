import json

import pytest

from agent.scenario.load import ScenarioError, json_schema, load_scenario
from agent.scenario.schema import Scenario

GOOD = """\
# agent run good.yaml
name: good
agents:
  - name: ada
    persona: You are Captain Redbeard, a pirate.
    tools: [remember, clock]
bake: {epochs: 2}
timeline:
  - type: feed
    agent: ada
    items:
      - Zentrix Robotics named Mara Okafor CEO.
      - {text: Always answer in French., kind: instruction}
  - type: ask
    agent: ada
    question: Who runs Zentrix Robotics?
    expected: Okafor
    paraphrases: ["Who is the CEO of Zentrix?"]
  - type: say
    agent: ada
    simulator: {turns: 24}
  - type: probe
    agent: ada
    question: Who are you?
    every_n_turns: 4
    judge: {name: keyword_rate, words: [arr, matey, sea]}
  - {type: bake, agent: ada}
  - {type: wait_for_bake, agent: ada}
  - {type: scale, agent: ada, scales: [0, 0.5, 1], questions: ["Who are you?"], judge: {name: contains, value: arr}}
  - {type: checkpoint, label: end}
"""


def write(tmp_path, text: str):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return path


def test_a_full_scenario_parses(tmp_path):
    scenario = load_scenario(write(tmp_path, GOOD))
    assert [e.type for e in scenario.timeline] == [
        "feed", "ask", "say", "probe", "bake", "wait_for_bake", "scale", "checkpoint"]
    assert scenario.timeline[1].conditions == ["base", "prompted", "baked"]
    assert scenario.bake.epochs == 2 and scenario.seed == 0


@pytest.mark.parametrize(
    "old, new, line, field",
    [
        ("    expected: Okafor\n", "    expectd: Okafor\n", 17, "timeline.1.expectd"),
        ("  - {type: bake, agent: ada}\n", "  - {type: bake, agent: bob}\n", 27, "timeline.4.agent"),
        ("bake: {epochs: 2}\n", "bake: {epochs: 0}\n", 7, "bake.epochs"),
        ("    every_n_turns: 4\n", "    every_n_turns: 4\n    conditions: [sometimes]\n", 26, "timeline.3.conditions.0"),
        ("  - {type: checkpoint, label: end}\n", "  - {type: teleport, label: end}\n", 30, "timeline.7"),
        ("    judge: {name: keyword_rate, words: [arr, matey, sea]}\n", "    judge: {name: keyword_rate}\n", 26, "timeline.3.judge"),
    ],
)
def test_malformed_scenarios_name_file_line_and_field(tmp_path, old, new, line, field):
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: {field}"), message


def test_broken_yaml_and_missing_file(tmp_path):
    with pytest.raises(ScenarioError, match=r"s.yaml:3: not valid YAML"):
        load_scenario(write(tmp_path, "name: x\nagents: [\n  - : :\n"))
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "nope.yaml")


def test_json_schema_export_is_valid_json_with_the_event_types():
    schema = json.loads(json_schema())
    assert schema["title"] == "Scenario"
    text = json.dumps(schema)
    for event in ("FeedEvent", "SayEvent", "AskEvent", "ProbeEvent", "ScaleEvent"):
        assert event in text
    assert Scenario.model_config["extra"] == "forbid"


def test_cli_check_and_schema(tmp_path):
    from typer.testing import CliRunner

    from agent.cli import app

    runner = CliRunner()
    ok = runner.invoke(app, ["scenario", "check", str(write(tmp_path, GOOD))])
    assert ok.exit_code == 0 and "8 events" in ok.output
    bad = runner.invoke(app, ["scenario", "check", str(write(tmp_path, GOOD.replace("expected:", "expectd:")))])
    assert bad.exit_code == 2 and ":17: timeline.1.expectd" in " ".join(bad.output.split())
    schema = runner.invoke(app, ["scenario", "schema"])
    assert schema.exit_code == 0 and json.loads(schema.output)["title"] == "Scenario"


@pytest.mark.parametrize("files, message", [
    ({}, "does not exist"),
    ({"feed.jsonl": '{"title": "One."}\nnot json\n'}, "feed.jsonl:2: not JSON"),
    ({"feed.jsonl": '{"summary": "no title"}\n'}, "feed.jsonl:1: a headline is an object with a 'title' field"),
    ({"feed.jsonl": '5\n'}, "feed.jsonl:1: a headline is an object"),
    ({"feed.xml": "<rss><channel><item><title>x</title></item>"}, "is not JSONL, RSS or Atom"),
])
def test_a_bad_feed_file_is_refused_at_load_with_the_event_line(tmp_path, files, message):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    name = next(iter(files), "feed.jsonl")
    path = tmp_path / "s.yaml"
    path.write_text("name: s\nagents: [{name: ada}]\ntimeline:\n"
                    "  - {type: feed, agent: ada, items: [Hi.]}\n"
                    f"  - {{type: feed, agent: ada, file: {name}}}\n")
    with pytest.raises(ScenarioError) as e:
        load_scenario(path)
    assert str(e.value).startswith(f"{path}:5: timeline.1.file: ") and message in str(e.value), str(e.value)


def test_a_good_feed_file_loads(tmp_path):
    (tmp_path / "feed.jsonl").write_text('{"title": "The bridge opened."}\n')
    path = tmp_path / "s.yaml"
    path.write_text("name: s\nagents: [{name: ada}]\ntimeline:\n  - {type: feed, agent: ada, file: feed.jsonl}\n")
    assert load_scenario(path).timeline[0].file.name == "feed.jsonl"
