"""`agent chat` on the tiny model with the in-process engine: the slash commands and a turn."""

import yaml
from typer.testing import CliRunner

from agent.cli import app
from tests.unit.tiny_bake import tiny_bake

TINY_BAKE = tiny_bake(batch_size=4)


def test_chat_commands(tiny_model, tmp_path):
    config = tmp_path / "runtime.yaml"
    config.write_text(yaml.safe_dump({"model": str(tiny_model), "engine": {"kind": "transformers"},
                                      "bake": TINY_BAKE, "gate": {"min_fidelity": -1e9, "max_locality_kl": 1e9}}))
    lines = ["/remember news: The tower is blue.", "/remember ", "/status", "hello", "/bake",
             "/adapters", "/nope", "/quit", "never read"]
    result = CliRunner().invoke(app, ["chat", "--agent", "ada", "--persona", "You are terse.",
                                      "--home", str(tmp_path / "home"), "--runtime-config", str(config)],
                                input="\n".join(lines) + "\n")
    out = " ".join(result.output.split())
    assert result.exit_code == 0, result.output
    assert "added as item 2 (news, pending)" in out  # item 1 is the persona
    assert "refused:" in out  # an empty memory is refused with the reason
    assert "memories {'pending': 2, 'baking': 0, 'baked': 0}" in out
    assert "ada (base + context):" in out  # the turn before any bake
    assert "ada-v0001: live" in out and "live: ada-v0001" in out
    assert "unknown command /nope" in out
    assert "never read" not in out
