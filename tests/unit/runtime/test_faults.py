"""Crash safety with real faults: baker workers killed with SIGKILL at each phase of a bake.

Each worker is a real ``python -m agent.runtime.worker`` process on the tiny model; the kill is the
kernel's SIGKILL, sent by the worker to itself at an exact point (``baking/faults.py``).
"""

import os
import signal
from pathlib import Path

from agent.runtime.config import RuntimeConfig
from agent.serving.hf import TransformersEngine
from agent.runtime.runtime import Runtime
from agent.runtime.worker import spawn_worker
from baking.faults import ENV, POINTS
from memory.store import MemoryStore
from tests.unit.tiny_bake import tiny_bake

TINY_BAKE = tiny_bake()
FACTS = ("The tower is blue.", "The bridge is red.", "The river is green.")


def test_a_baker_killed_at_any_phase_loses_nothing_and_the_next_bake_succeeds(tiny_model, tmp_path):
    config = RuntimeConfig(home=tmp_path, model=str(tiny_model), bake=TINY_BAKE, engine={"kind": "transformers"},
                           gate={"min_fidelity": -1e9, "max_locality_kl": 1e9})
    store = MemoryStore(config.db_path)
    store.create_agent("ada")
    ids = [store.add("ada", fact, "news").item.id for fact in FACTS]
    folder = config.adapters_dir / "ada"

    for phase in POINTS:
        worker = spawn_worker(config, "ada", env={**os.environ, ENV: f"kill@{phase}"})
        assert worker.wait(timeout=300) == -signal.SIGKILL, phase
        # Nothing registered, nothing lost: the run is failed at the next claim or restart and
        # every item is pending again.
        assert store.adapters("ada") == [] and store.live("ada") is None, phase
        assert store.recover() == 1, phase
        assert [store.get(i).status for i in ids] == ["pending"] * 3, phase
        assert store.runs("ada")[-1].status == "failed" and "is gone" in store.runs("ada")[-1].error
        leftovers = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
        if phase == "writing":  # killed mid-write: a temporary folder, never a run-NNNN one
            assert any(".tmp-" in name for name in leftovers), leftovers
        if phase == "registering":  # complete on disk but unknown to the store
            assert f"run-{store.runs('ada')[-1].id:04d}" in leftovers

    # A runtime opened now serves nothing half-written.
    runtime = Runtime.open(config, TransformersEngine(str(tiny_model)))
    assert runtime.live_adapter("ada") is None and runtime.engine.adapters() == []

    # The next bake succeeds with every item, and sweeps what the killed ones left.
    assert spawn_worker(config, "ada").wait(timeout=300) == 0
    record = store.adapters("ada")[-1]
    assert record.status == "candidate" and sorted(record.item_ids) == sorted(ids)
    assert sorted(p.name for p in folder.iterdir()) == [Path(record.path).name]
    runtime.swap_ready("ada")
    assert runtime.live_adapter("ada") == record.name
    assert [store.get(i).status for i in ids] == ["baked"] * 3


def test_a_refused_adapter_stays_refused_whatever_crashes_after_the_verdict(tiny_model, tmp_path):
    import pytest

    from memory import MemoryInputError

    config = RuntimeConfig(home=tmp_path, model=str(tiny_model), bake=TINY_BAKE, engine={"kind": "transformers"},
                           gate={"min_fidelity": 1e9})  # every bake is refused
    store = MemoryStore(config.db_path)
    store.create_agent("ada")
    item = store.add("ada", FACTS[0], "news").item
    worker = spawn_worker(config, "ada", env={**os.environ, ENV: "kill@registered"})
    assert worker.wait(timeout=300) == -signal.SIGKILL  # killed right after the verdict was stored
    [refused] = store.adapters("ada")
    assert refused.status == "rejected" and store.get(item.id).status == "pending"

    runtime = Runtime.open(config, TransformersEngine(str(tiny_model)))  # a restart swaps what is ready
    assert runtime.live_adapter("ada") is None and runtime.swap_ready() == [] and runtime.engine.adapters() == []
    with pytest.raises(MemoryInputError, match="only a candidate"):
        store.promote(refused.id, "any other path")
    with pytest.raises(MemoryInputError, match="rejected"):
        runtime.rollback("ada", refused.name)
    assert store.adapter(refused.id).status == "rejected" and store.live("ada") is None
