"""Loopback by default: servers bind to 127.0.0.1; anything else needs an explicit flag and an
API key, which the managed vLLM server then requires on every request."""

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from agent.cli import app
from agent.runtime.config import EngineConfig, RuntimeConfig
from agent.serving.vllm import VLLMSettings, vllm_command
from agent.runtime.engine import open_engine
from agent.serving.engine import EngineError


def test_the_default_bind_is_loopback_without_a_key():
    command = vllm_command("/m", 8000, VLLMSettings())
    assert command[command.index("--host") + 1] == "127.0.0.1" and "--api-key" not in command
    assert EngineConfig().host == "127.0.0.1"


def test_a_public_bind_needs_the_flag():
    with pytest.raises(ValidationError, match="needs allow_remote"):
        EngineConfig(host="0.0.0.0")
    assert EngineConfig(host="0.0.0.0", allow_remote=True).allow_remote
    assert EngineConfig(host="::1").host == "::1" and EngineConfig(host="localhost").host == "localhost"


def test_a_public_bind_needs_a_key(tmp_path, monkeypatch):
    monkeypatch.delenv("PROMPTBAKE_API_KEY", raising=False)
    config = RuntimeConfig(home=tmp_path, engine={"host": "0.0.0.0", "allow_remote": True})
    with pytest.raises(EngineError, match="without an API key"):
        open_engine(config)


def test_the_key_goes_to_the_server_command():
    command = vllm_command("/m", 8000, VLLMSettings(host="0.0.0.0", api_key="s3cret"))
    assert command[command.index("--api-key") + 1] == "s3cret"
    assert "s3cret" not in repr(VLLMSettings(api_key="s3cret"))  # never in logs


def test_agent_serve_refuses_a_public_host_without_the_flag(tmp_path):
    result = CliRunner().invoke(app, ["serve", "--home", str(tmp_path), "--host", "0.0.0.0"])
    assert result.exit_code == 2 and "needs allow_remote" in " ".join(result.output.split())
