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
