"""The agents' OpenAI-compatible endpoint on the tiny model: model = agent name, an API key
when set, clear 4xx errors for bad requests. Streaming is in test_server_stream.py."""

import json

import httpx
import pytest

from agent.runtime.config import RuntimeConfig
from agent.serving.hf import TransformersEngine
from agent.serving.vllm import free_port
from agent.runtime.runtime import Runtime
from agent.serving.server import AgentServer


@pytest.fixture(scope="module")
def server(tiny_model, tmp_path_factory):
    # One server for the module: its tests only read (list agents, chat), none changes the store.
    home = tmp_path_factory.mktemp("server")
    runtime = Runtime.open(RuntimeConfig(home=home, model=str(tiny_model), engine={"kind": "transformers"}),
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


AUTH = {"Authorization": "Bearer k3y"}
HI = {"model": "ada", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2, "temperature": 0}


@pytest.mark.parametrize("body", ["[1, 2]", '"x"', "3", "null"])
def test_a_body_that_is_not_an_object_is_a_400(server, body):
    answer = httpx.post(f"{server.url}/v1/chat/completions", content=body, headers=AUTH, timeout=60)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["type"] == "invalid_request_error"
    assert "JSON object" in answer.json()["error"]["message"]


@pytest.mark.parametrize("field, bad, good", [
    ("max_tokens", -5, 2), ("max_tokens", 0, 2), ("max_tokens", 2.5, 2.0), ("max_tokens", True, 2),
    ("max_tokens", "2", 2),
    ("temperature", -0.1, 0), ("temperature", "hot", 0.0), ("temperature", float("inf"), 0),
    ("temperature", float("nan"), 0),
    ("top_p", 0, 1), ("top_p", 1.5, 0.9), ("top_p", -1, 1.0),
    ("seed", "x", None), ("seed", 1.5, 7), ("seed", True, 7),
    ("stream", "yes", False), ("stream", 1, None),
    ("n", 2, 1), ("n", 0, None),
    ("stream_options", {"include_usage": "yes"}, {"include_usage": False}), ("stream_options", [1], None),
])
def test_a_bad_sampling_field_is_a_400_naming_it(server, field, bad, good):
    # json.dumps writes inf/nan as Infinity/NaN, which Python's json.loads (the server's) reads.
    bad_answer = httpx.post(f"{server.url}/v1/chat/completions", content=json.dumps({**HI, field: bad}),
                            headers=AUTH, timeout=60)
    assert bad_answer.status_code == 400, bad_answer.text
    error = bad_answer.json()["error"]
    assert error["type"] == "invalid_request_error" and field in error["message"]
    if field == "n":
        assert "only n=1" in error["message"]
    good_answer = httpx.post(f"{server.url}/v1/chat/completions", json={**HI, field: good}, headers=AUTH, timeout=60)
    assert good_answer.status_code == 200, good_answer.text
