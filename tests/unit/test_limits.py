"""Oversized inputs meet limits that come from configuration, with a clear error."""

import pytest
from typer.testing import CliRunner

from agent.cli import app
from agent.scenario.load import ScenarioError, load_scenario
from memory import MemoryInputError, MemoryStore
from tools.registry import read_headlines


def test_a_10_mb_scenario_is_refused_unread(tmp_path):
    path = tmp_path / "huge.yaml"
    with open(path, "w") as f:
        f.write("name: huge\n# " + "x" * (10 << 20) + "\n")
    with pytest.raises(ScenarioError, match="over the 1048576-byte limit"):
        load_scenario(path)
    result = CliRunner().invoke(app, ["run", str(path), "--runs", str(tmp_path / "runs")])
    assert result.exit_code == 2 and "byte limit" in result.output and not (tmp_path / "runs").exists()
    big = CliRunner().invoke(app, ["scenario", "check", str(path)])
    assert big.exit_code == 2


def test_a_huge_item_is_refused_with_its_limit(tmp_path):
    store = MemoryStore(tmp_path / "m.db", max_item_chars=2000)
    store.create_agent("ada")
    with pytest.raises(MemoryInputError, match="2000"):
        store.add("ada", "x" * 2001, "fact")
    assert store.items("ada") == []


def test_thousands_of_items_are_baked_in_bounded_batches(tmp_path):
    store = MemoryStore(tmp_path / "m.db")
    store.create_agent("ada")
    for i in range(3000):
        store.add("ada", f"Fact number {i} is true.", "fact")
    first = store.claim("ada", lease_s=60, limit=256)
    assert len(first.item_ids) == 256 and first.item_ids[0] == 1
    assert len(store.items("ada", status="pending")) == 3000 - 256


def test_an_oversized_feed_file_is_refused(tmp_path):
    feed = tmp_path / "feed.jsonl"
    feed.write_text('{"title": "A headline."}\n' * 1000)
    assert len(read_headlines(feed)) == 1000
    with pytest.raises(ValueError, match="feed file limit"):
        read_headlines(feed, max_bytes=1000)
