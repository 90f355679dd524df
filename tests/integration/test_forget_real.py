"""Un-baking on the real model: a fact learnt into the weights is no longer answered after
`forget`, and the lineage is rebuilt from the base model with only the other fact.

Not shown here: the other fact answered after the rebake. At this test's small budget the 135M
model does not learn the Penrow fact even alone (measured 2026-11-30), so asserting it would
test the budget, not forget."""

import pytest

from agent.config import RuntimeConfig
from agent.engines import SamplingParams
from agent.runtime import Runtime

pytestmark = pytest.mark.integration

FACTS = {
    "Okafor": ("Zentrix Robotics named Mara Okafor as its new chief executive officer on Monday.",
               "Who is the chief executive officer of Zentrix Robotics?"),
    "Penrow": ("Halvorsen Bank named Ilsa Penrow as its new chief financial officer on Tuesday.",
               "Who is the chief financial officer of Halvorsen Bank?"),
}
GREEDY = SamplingParams(temperature=0.0, max_tokens=40)


def closed_book(runtime, question: str) -> str:
    return runtime.chat("ada", [{"role": "user", "content": question}], GREEDY, with_context=False).text


def test_a_forgotten_fact_leaves_the_weights_and_the_lineage_is_rebuilt_without_it(tmp_path):
    # One fact per bake, with the budget the runtime test shows is enough for one fact from base.
    config = RuntimeConfig(home=tmp_path,
                           bake={"num_queries": 32, "num_eval_queries": 6, "num_control_queries": 4, "epochs": 3},
                           gate={"min_fidelity": 0.0, "max_locality_kl": 10})
    runtime = Runtime.open(config)  # the product path: vLLM, hot swaps
    try:
        runtime.store.create_agent("ada")
        ids = {}
        for name, (text, question) in FACTS.items():
            ids[name] = runtime.store.add("ada", text, "news").item.id
            runtime.bake("ada")
            if name == "Okafor":  # the fact to forget was really in the weights
                assert name in closed_book(runtime, question)

        plan = runtime.forget(ids["Okafor"])
        # Okafor was in the first bake: back to the base model, Penrow rebaked alone.
        assert plan.back_to is None and plan.requeued == (ids["Penrow"],)
        assert runtime.store.contents(runtime.store.live("ada")) == [ids["Penrow"]]
        assert runtime.live_adapter("ada") == runtime.store.live("ada").name  # the rebake is served
        answer = closed_book(runtime, FACTS["Okafor"][1])
        assert "Okafor" not in answer, answer
    finally:
        runtime.close()
