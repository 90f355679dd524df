"""Provenance and un-baking on the tiny model: every adapter records its items and their
hashes; forgetting an item rebuilds the lineage without it, from the last adapter before it."""

import pytest

from agent.runtime.config import RuntimeConfig
from agent.serving.hf import TransformersEngine
from agent.runtime.runtime import Runtime
from memory import MemoryInputError
from tests.unit.tiny_bake import tiny_bake

TINY_BAKE = tiny_bake()


@pytest.fixture
def runtime(tiny_model, tmp_path):
    config = RuntimeConfig(home=tmp_path, model=str(tiny_model), bake=TINY_BAKE, engine={"kind": "transformers"},
                           gate={"min_fidelity": -1e9, "max_locality_kl": 1e9})
    runtime = Runtime.open(config, TransformersEngine(str(tiny_model)))
    runtime.store.create_agent("ada")
    yield runtime
    runtime.close()


def test_forgetting_rebuilds_the_lineage_without_the_item(runtime):
    store = runtime.store
    a = store.add("ada", "The tower is blue.", "news").item
    b = store.add("ada", "The bridge is red.", "news").item
    runtime.bake("ada")
    v1 = store.live("ada")
    c = store.add("ada", "The river is green.", "news").item
    runtime.bake("ada")
    v2 = store.live("ada")
    # Provenance: ids and content hashes per adapter, and the lineage.
    assert v1.item_ids == (a.id, b.id) and v1.item_hashes == (a.content_hash, b.content_hash)
    assert v2.parent == v1.name and store.contents(v2) == [a.id, b.id, c.id]
    assert [x.name for x in store.lineage(v2)] == [v1.name, v2.name]

    # Forget c (only in v2): back to v1 at once, nothing to rebake.
    plan = runtime.forget(c.id)
    assert (plan.was_live, plan.back_to, plan.requeued) == (v2.name, v1.name, ())
    served = runtime.live_adapter("ada")  # v1 again, under a fresh name (a served name is never reused)
    assert served.startswith(f"{v1.name}-r") and store.get(c.id).status == "forgotten"

    # Forget a (in v1, the root): the base model serves, b is baked again alone.
    plan = runtime.forget(a.id)
    assert (plan.back_to, plan.requeued) == (None, (b.id,))
    v3 = store.live("ada")
    assert v3.parent is None and store.contents(v3) == [b.id]
    assert runtime.live_adapter("ada") == v3.name
    assert {i.id: i.status for i in store.items("ada")} == {a.id: "forgotten", b.id: "baked", c.id: "forgotten"}
    # A forgotten item never comes back: not in context, not rebaked, no rollback to it.
    assert runtime.context_items("ada") == []
    with pytest.raises(MemoryInputError, match="holds forgotten item"):
        store.rollback("ada", v1.name)
    with pytest.raises(MemoryInputError, match="already forgotten"):
        store.forget(a.id)
    kinds = [e["kind"] for e in store.events("ada")]
    assert kinds.count("item_forgotten") == 2 and "swap" in kinds
