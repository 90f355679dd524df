"""The supervisor and the hot swap under faults: a reload that fails after a restart, a
candidate the engine cannot serve, a promotion the store refuses."""

import shutil
import time

import pytest

from agent.config import RuntimeConfig
from agent.engines import EngineError, EngineUnavailable, SamplingParams, TransformersEngine
from agent.runtime import Runtime
from memory import MemoryInputError
from tiny_bake import tiny_bake


class RestartableEngine(TransformersEngine):
    """The in-process engine with a server's life cycle: it can go down (health fails),
    a restart drops every adapter, and the next ``fail_loads`` loads fail."""

    def __init__(self, model: str) -> None:
        super().__init__(model)
        self.up, self.restarts, self.fail_loads = True, 0, 0

    def health(self) -> bool:
        return self.up

    def restart(self) -> None:
        for name in self.adapters():
            self.unload_adapter(name)
        self.up, self.restarts = True, self.restarts + 1

    def load_adapter(self, name, path) -> None:
        if self.fail_loads:
            self.fail_loads -= 1
            raise EngineError(f"simulated: loading {name} failed once")
        super().load_adapter(name, path)


@pytest.fixture()
def baked(tiny_model, tmp_path):
    """A runtime on the restartable engine whose agent has a live adapter."""
    config = RuntimeConfig(home=tmp_path, model=str(tiny_model), bake=tiny_bake(batch_size=4),
                           engine={"kind": "transformers"}, gate={"min_fidelity": -1e9, "max_locality_kl": 1e9})
    runtime = Runtime.open(config, RestartableEngine(str(tiny_model)))
    runtime.store.create_agent("ada")
    runtime.store.add("ada", "The tower is blue.", "news")
    runtime.bake("ada")
    assert runtime.live_adapter("ada") == "ada-v0001"
    yield runtime
    runtime.close()


def test_the_supervisor_retries_until_every_live_adapter_is_back(baked):
    engine: RestartableEngine = baked.engine
    engine.up, engine.fail_loads = False, 1  # down; after the restart the reload fails once
    baked.supervise(interval_s=0.05, failures=1)
    deadline = time.monotonic() + 30
    while (baked._down.is_set() or engine.restarts == 0) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not baked._down.is_set(), "the runtime stayed down after a reload failed once"
    assert engine.restarts == 1  # the retry reloaded into the healthy engine, no second restart
    assert baked.live_adapter("ada") in engine.adapters()
    kinds = [e["kind"] for e in baked.store.events(kinds=("engine_down", "engine_restart_failed", "engine_restarted"))]
    assert kinds == ["engine_down", "engine_restart_failed", "engine_restarted"]
    answer = baked.chat("ada", [{"role": "user", "content": "Hi"}], SamplingParams(max_tokens=2))
    assert answer.adapter == baked.live_adapter("ada")


def test_requests_get_unavailable_while_a_recovery_has_not_finished(baked):
    baked.engine.fail_loads = 5
    baked.engine.up = False
    assert baked._recover_engine("test") is False  # restarted, reload failed: still down
    with pytest.raises(EngineUnavailable):
        baked.chat("ada", [{"role": "user", "content": "Hi"}], SamplingParams(max_tokens=2))
    baked.engine.fail_loads = 0
    assert baked._recover_engine("test again") is True


def _candidate(runtime: Runtime, tmp_path) -> int:
    """A second, gate-passed candidate for ada: a copy of the live adapter under a new run."""
    store = runtime.store
    store.add("ada", "The bridge is red.", "news")
    run = store.claim("ada", 60)
    live = store.live("ada")
    path = runtime.config.adapters_dir / "ada" / f"run-{run.id:04d}"
    shutil.copytree(live.path, path)
    record = store.register_candidate(run.id, str(path), live.name, {"gate": {"passed": True, "reason": "ok"}})
    return record.id


def test_a_candidate_that_cannot_serve_a_token_never_takes_the_agents_requests(baked, tmp_path, monkeypatch):
    candidate = _candidate(baked, tmp_path)
    real_chat = baked.engine.chat

    def refuse_new(messages, adapter, params=SamplingParams(), **kw):
        if adapter == "ada-v0002":
            raise EngineError("simulated: the first token failed")
        return real_chat(messages, adapter, params, **kw)

    monkeypatch.setattr(baked.engine, "chat", refuse_new)
    with pytest.raises(EngineError, match="first token"):
        baked.swap_ready("ada")
    assert baked.live_adapter("ada") == "ada-v0001"  # requests still go to the promoted adapter
    assert baked.store.adapter(candidate).status == "rejected"
    assert baked.store.live("ada").name == "ada-v0001"
    assert "ada-v0002" not in baked.engine.adapters()  # unloaded, not leaked


def test_a_promotion_the_store_refuses_leaves_the_old_adapter_serving(baked, tmp_path, monkeypatch):
    candidate = _candidate(baked, tmp_path)
    baked.store.reject(candidate, "refused meanwhile")  # e.g. by another process
    with pytest.raises(MemoryInputError, match="only a candidate"):
        baked._swap(baked.store.adapter(candidate))
    assert baked.live_adapter("ada") == "ada-v0001" and baked.store.live("ada").name == "ada-v0001"
    assert "ada-v0002" not in baked.engine.adapters()


def test_a_failed_unload_is_in_the_audit_log(baked):
    baked._unload_quietly("never-loaded", "ada")
    events = baked.store.events("ada", kinds=("unload_failed",))
    assert len(events) == 1 and events[0]["data"]["adapter"] == "never-loaded"
