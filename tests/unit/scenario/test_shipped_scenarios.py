"""Every shipped scenario parses, says how to run it and why, and names files that exist."""

from pathlib import Path

import pytest

from agent.scenario.load import load_scenario
from agent.scenario.schema import FeedEvent

SCENARIOS = Path(__file__).resolve().parents[3] / "scenarios"
SHIPPED = sorted(SCENARIOS.glob("*.yaml"))


def test_the_promised_scenarios_are_shipped():
    names = {p.stem for p in SHIPPED}
    assert {"quickstart", "news", "persona", "instructions", "half_bake", "pursuit", "multi_agent"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_scenario_parses_and_documents_itself(path):
    scenario = load_scenario(path)
    header = path.read_text().split("\nname:")[0]
    assert header.startswith(f"# Command: agent run scenarios/{path.name}"), header[:80]
    assert "# Purpose:" in header
    for event in scenario.timeline:
        if isinstance(event, FeedEvent) and event.file is not None:
            assert (path.parent / event.file).is_file(), event.file


def test_persona_scenario_is_long_horizon():
    scenario = load_scenario(SCENARIOS / "persona.yaml")
    turns = sum(e.simulator.turns for e in scenario.timeline if e.type == "say" and e.simulator)
    probes = [e for e in scenario.timeline if e.type == "probe"]
    assert turns >= 24
    assert probes and {"prompted", "baked", "baked+prompted"} <= set(probes[0].conditions)
