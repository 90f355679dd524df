"""The vLLM server on the real model: an API key guards it, and when it is killed mid-service
the runtime answers with a retryable error at once, restarts it, reloads the live adapter and
serves again."""

import os
import signal
import time

import httpx
import pytest

from agent.runtime.config import RuntimeConfig
from agent.serving.engine import EngineError, EngineUnavailable, SamplingParams
from agent.serving.vllm import free_port
from agent.runtime.runtime import Runtime
from agent.runtime.worker import spawn_worker
from agent.serving.server import AgentServer

from .helpers import QUICK_BAKE

pytestmark = pytest.mark.integration

HI = [{"role": "user", "content": "Hi"}]


def test_a_killed_server_is_restarted_with_its_adapters_and_a_key_guards_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMPTBAKE_API_KEY", "test-key-123")
    config = RuntimeConfig(home=tmp_path, bake=QUICK_BAKE, gate={"min_fidelity": -1e9, "max_locality_kl": 1e9})
    runtime = Runtime.open(config)
    try:
        runtime.store.create_agent("ada")
        runtime.store.add("ada", "You are Captain Redbeard, a pirate.", "persona")
        assert spawn_worker(config, "ada").wait(timeout=600) == 0
        runtime.swap_ready("ada")
        assert runtime.live_adapter("ada") == "ada-v0001"

        # Loopback only, and every request needs the key.
        url = runtime.engine.url
        assert url.startswith("http://127.0.0.1:")
        assert httpx.get(f"{url}/v1/models").status_code == 401
        assert httpx.get(f"{url}/v1/models", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert httpx.get(f"{url}/v1/models", headers={"Authorization": "Bearer test-key-123"}).status_code == 200

        # Kill the whole server with SIGKILL while the runtime serves; after the restart the
        # first reload of the live adapter fails too (the supervisor must try again).
        server = AgentServer(runtime, port=free_port(), api_key="agents-key").start()
        real_load, failed = runtime.engine.load_adapter, []

        def load_failing_once(name, path):
            if not failed:
                failed.append(name)
                raise EngineError(f"simulated: reloading {name} failed once")
            return real_load(name, path)

        runtime.engine.load_adapter = load_failing_once
        runtime.supervise(interval_s=0.5)
        os.killpg(runtime.engine.process.pid, signal.SIGKILL)
        started = time.monotonic()
        with pytest.raises(EngineUnavailable):
            runtime.chat("ada", HI, SamplingParams(max_tokens=2))
        assert time.monotonic() - started < 10  # a clear error, not a hang
        during = httpx.post(f"{server.url}/v1/chat/completions", headers={"Authorization": "Bearer agents-key"},
                            json={"model": "ada", "messages": HI, "max_tokens": 2}, timeout=30)
        assert during.status_code == 503 and during.headers["Retry-After"], during.text

        # It comes back by itself, with the live adapter loaded again.
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                answer = runtime.chat("ada", HI, SamplingParams(max_tokens=4))
                break
            except EngineUnavailable:
                time.sleep(1)
        else:
            pytest.fail("the runtime did not bring the server back within 300 s")
        assert answer.adapter == runtime.live_adapter("ada") and answer.adapter in runtime.engine.adapters()
        assert failed, "the reload fault never fired"
        kinds = [e["kind"] for e in runtime.store.events()]
        assert "engine_down" in kinds and "engine_restart_failed" in kinds and "engine_restarted" in kinds
        after = httpx.post(f"{server.url}/v1/chat/completions", headers={"Authorization": "Bearer agents-key"},
                           json={"model": "ada", "messages": HI, "max_tokens": 2}, timeout=60)
        assert after.status_code == 200 and after.json()["system_fingerprint"] == runtime.live_adapter("ada")
        server.stop()
    finally:
        runtime.close()
