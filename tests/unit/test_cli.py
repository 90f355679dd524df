"""`agent bake` turns bad input into one clear message and exit code 2, never a traceback."""

import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from agent.cli import app

runner = CliRunner()


def run(*args: str):
    result = runner.invoke(app, ["bake", *args])
    # An unexpected exception would surface here instead of a SystemExit from typer.Exit.
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


@pytest.mark.parametrize(
    "args, message",
    [
        (["--text", "   ", "--out", "{tmp}/a"], "text is empty"),
        (["--out", "{tmp}/a"], "nothing to bake"),
        (["--text", "Be kind.", "--rank", "128", "--out", "{tmp}/a"], "lora_rank 128 is above max_lora_rank 64"),
        (["--text", "Be kind.", "--out", "/proc/promptbake/a"], "not writable"),
        (["--text", "Be kind.", "--parent", "{tmp}/nope", "--out", "{tmp}/a"], "parent adapter"),
        (["--text", "Be kind.", "--config", "{tmp}/missing.yaml", "--out", "{tmp}/a"], "does not exist"),
        (["--text", "Be kind.", "--model", "no-such-model", "--out", "{tmp}/a"], "cannot resolve model"),
    ],
)
def test_bad_input_gives_a_clear_error(tmp_path, args, message):
    result = run(*[a.format(tmp=tmp_path) for a in args])
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize("argv, message", [
    (["bake", "--text", "Be kind.", "--device", "cuda:7", "--out", "{tmp}/a"], "cuda:7"),  # the README's example
    (["bake", "--text", "Be kind.", "--device", "bogus", "--out", "{tmp}/a"], "unknown device"),
    (["chat", "--engine", "bogus", "--home", "{tmp}/h"], "bad --engine 'bogus'"),
])
def test_ordinary_bad_input_anywhere_is_one_line_and_exit_2(tmp_path, argv, message):
    proc = subprocess.run([sys.executable, "-m", "agent.cli", *[a.format(tmp=tmp_path) for a in argv]],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "40"})
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert len(proc.stderr.strip().splitlines()) == 1 and message in proc.stderr  # one line, even at 40 columns


def test_a_failed_agent_bake_is_one_line_and_its_items_go_back_to_pending(tmp_path, monkeypatch):
    import baking

    from memory import MemoryStore

    store = MemoryStore(tmp_path / "memory.db")
    store.create_agent("ada")
    item = store.add("ada", "The bridge is red.", "fact").item

    def crash(*args, **kwargs):
        raise RuntimeError("simulated: the baker crashed")

    monkeypatch.setattr(baking, "bake", crash)
    result = runner.invoke(app, ["bake", "--agent", "ada", "--home", str(tmp_path)])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert "the bake of ada failed (RuntimeError: simulated: the baker crashed)" in " ".join(result.output.split())
    assert store.get(item.id).status == "pending"


def test_a_bug_is_one_line_exit_1_with_the_traceback_kept(tmp_path, monkeypatch):
    import agent.scenario.report

    monkeypatch.setattr(agent.scenario.report, "render", lambda run_dir: 1 / 0)
    (tmp_path / "report.json").write_text("{}")
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 1 and "internal error: ZeroDivisionError" in result.output
    saved = result.output.split("traceback in ")[1].split(")")[0].strip()
    assert "ZeroDivisionError" in open(saved).read()


def test_unknown_kind_is_rejected_by_the_parser(tmp_path):
    result = run("--kind", "poem", "--text", "x", "--out", str(tmp_path / "a"))
    assert result.exit_code == 2
    assert "poem" in result.output


def test_no_traceback_from_the_real_process(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "agent.cli", "bake", "--text", "", "--out", str(tmp_path / "a")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "text is empty" in proc.stderr


def test_agent_audit_lists_the_log_with_timestamps(tmp_path):
    from memory import MemoryStore

    store = MemoryStore(tmp_path / "memory.db")
    store.create_agent("ada")
    store.add("ada", "The tower is blue.", "fact")
    store.audit("ada", "swap", adapter="ada-v0001", latency_s=0.3)
    result = runner.invoke(app, ["audit", "--home", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    import json

    events = [json.loads(line) for line in result.output.splitlines()]
    assert [e["kind"] for e in events] == ["agent_created", "item_added", "swap"]
    assert events[-1]["data"] == {"adapter": "ada-v0001", "latency_s": 0.3}
    only = runner.invoke(app, ["audit", "--home", str(tmp_path), "--kind", "swap"])
    assert only.exit_code == 0 and "swap" in only.output and "item_added" not in only.output
