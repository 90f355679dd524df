"""The supervisor and the hot swap under faults: a reload that fails after a restart, a
candidate the engine cannot serve, a promotion the store refuses."""

import shutil
from pathlib import Path
import time

import pytest

from agent.runtime.config import RuntimeConfig
from agent.serving.engine import EngineError, EngineUnavailable, SamplingParams
from agent.serving.hf import TransformersEngine
from agent.runtime.runtime import Runtime
from memory import MemoryInputError
from tests.unit.tiny_bake import tiny_bake


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
    record = store.register_candidate(run.id, str(path), live.name, {}, reason="ok", passed=True)
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


def test_a_candidate_waits_out_an_outage_instead_of_being_rejected(baked, tmp_path):
    candidate = _candidate(baked, tmp_path)
    baked._down.set()  # a restart in progress
    assert baked.swap_ready("ada") == [] and baked.store.adapter(candidate).status == "candidate"
    baked._down.clear()
    real_load = baked.engine.load_adapter

    def unavailable(name, path):
        raise EngineUnavailable("simulated: the server went away mid-swap")

    baked.engine.load_adapter = unavailable
    with pytest.raises(EngineUnavailable):
        baked.swap_ready("ada")
    assert baked.store.adapter(candidate).status == "candidate"  # not rejected: it is not the adapter's fault
    baked.engine.load_adapter = real_load
    [swap] = baked.swap_ready("ada")  # under a fresh name: one a failed load tried is never reused
    assert swap.adapter.startswith("ada-v0002") and baked.store.live("ada").name == "ada-v0002"


def test_a_tampered_live_adapter_takes_only_its_agent_to_the_base_model_during_a_recovery(baked):
    live = baked.store.live("ada")
    weights = Path(live.path) / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)  # same size, other values
    baked.engine.up = False
    assert baked._recover_engine("test") is True and not baked._down.is_set()
    assert baked.live_adapter("ada") is None  # served from base + context, audited
    [event] = baked.store.events("ada", kinds=("live_adapter_refused",))
    assert "SHA-256" in event["data"]["reason"]


def test_a_rollback_that_cannot_load_changes_nothing(baked, tmp_path):
    _candidate(baked, tmp_path)
    baked.swap_ready("ada")
    assert baked.live_adapter("ada") == "ada-v0002"
    first = Path(baked.store.adapters("ada")[0].path) / "adapter_model.safetensors"
    first.write_bytes(first.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(EngineError, match="SHA-256"):
        baked.rollback("ada", "ada-v0001")
    assert baked.store.live("ada").name == "ada-v0002" and baked.live_adapter("ada") == "ada-v0002"


def test_names_are_never_reused_after_a_restart(baked):
    before = baked.live_adapter("ada")
    baked.engine.up = False
    assert baked._recover_engine("test")
    assert baked.live_adapter("ada") != before and baked.live_adapter("ada").startswith("ada-v0001-r")


def test_a_per_bake_rank_above_what_the_engine_serves_is_refused_before_the_bake(baked):
    from pydantic import ValidationError

    assert baked.max_lora_rank == 8
    with pytest.raises(ValidationError, match="lora_rank 16 is above max_lora_rank 8"):
        baked.config_with({"lora_rank": 16})


def test_a_rolled_back_adapters_items_are_not_retaught(baked, tmp_path):
    from agent.runtime.worker import earlier_items

    _candidate(baked, tmp_path)
    baked.swap_ready("ada")
    assert [i.text for i in earlier_items(baked.store, "ada")] == ["The tower is blue.", "The bridge is red."]
    baked.rollback("ada", "ada-v0001")
    assert [i.text for i in earlier_items(baked.store, "ada")] == ["The tower is blue."]
