"""Un-baking on the real model: after `forget`, the forgotten fact is no longer answered from
the weights and the other fact still is."""

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


def test_a_forgotten_fact_leaves_the_weights_and_the_others_stay(tmp_path):
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
        # (A second small bake on top of the first learns less; what matters here is that the
        # rebake without Okafor, from the base model, answers Penrow.)

        plan = runtime.forget(ids["Okafor"])
        # Okafor was in the first bake: back to the base model, Penrow rebaked alone.
        assert plan.back_to is None and plan.requeued == (ids["Penrow"],)
        assert runtime.store.contents(runtime.store.live("ada")) == [ids["Penrow"]]
        after = {name: closed_book(runtime, q) for name, (_, q) in FACTS.items()}
        assert "Okafor" not in after["Okafor"], after
        assert "Penrow" in after["Penrow"], after
    finally:
        runtime.close()
