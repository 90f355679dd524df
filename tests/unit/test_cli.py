"""`agent bake` turns bad input into one clear message and exit code 2, never a traceback."""

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
