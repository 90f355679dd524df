"""The agents' OpenAI-compatible endpoint on the tiny model: model = agent name, an API key
when set, clear 4xx errors for bad requests."""

import httpx
import pytest

from agent.config import RuntimeConfig
from agent.engines import TransformersEngine, free_port
from agent.runtime import Runtime
from agent.server import AgentServer


@pytest.fixture
def server(tiny_model, tmp_path):
    runtime = Runtime.open(RuntimeConfig(home=tmp_path, model=str(tiny_model), engine={"kind": "transformers"}),
                           TransformersEngine(str(tiny_model)))
    runtime.store.create_agent("ada")
    runtime.store.add("ada", "You are terse.", "persona")
    server = AgentServer(runtime, port=free_port(), api_key="k3y").start()
    yield server
    server.stop()
    runtime.close()


def test_the_endpoint_serves_agents_by_name_behind_the_key(server):
    assert server.url.startswith("http://127.0.0.1:")
    assert httpx.get(f"{server.url}/v1/models").status_code == 401
    auth = {"Authorization": "Bearer k3y"}
    models = httpx.get(f"{server.url}/v1/models", headers=auth).json()["data"]
    assert [m["id"] for m in models] == ["ada"]
    body = {"model": "ada", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3, "temperature": 0}
    answer = httpx.post(f"{server.url}/v1/chat/completions", json=body, headers=auth, timeout=60)
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["role"] == "assistant" and answer.json()["usage"]["completion_tokens"] <= 3
    unknown = httpx.post(f"{server.url}/v1/chat/completions", json={**body, "model": "bob"}, headers=auth)
    assert unknown.status_code == 404 and "unknown agent" in unknown.json()["error"]["message"]
    bad = httpx.post(f"{server.url}/v1/chat/completions", json={"model": "ada", "messages": "hi"}, headers=auth)
    assert bad.status_code == 400
