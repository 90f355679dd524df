"""Un-baking on the real model: after `forget`, the forgotten fact is no longer answered from
the weights and the other fact still is."""

import pytest

from agent.config import RuntimeConfig
from agent.engines import SamplingParams, TransformersEngine
from agent.runtime import Runtime

pytestmark = pytest.mark.integration

FACTS = {
    "Okafor": ("Zentrix Robotics named Mara Okafor as its new chief executive officer on Monday.",
               "Who is the chief executive officer of Zentrix Robotics?"),
    "Valdane": ("The new Halden Bridge in Luneborg was designed by the architect Tomas Valdane.",
                "Who designed the Halden Bridge in Luneborg?"),
}
GREEDY = SamplingParams(temperature=0.0, max_tokens=40)


def closed_book(runtime, question: str) -> str:
    return runtime.chat("ada", [{"role": "user", "content": question}], GREEDY, with_context=False).text


def test_a_forgotten_fact_leaves_the_weights_and_the_others_stay(tmp_path):
    config = RuntimeConfig(home=tmp_path, engine={"kind": "transformers"},
                           bake={"num_queries": 32, "num_eval_queries": 6, "num_control_queries": 4, "epochs": 3},
                           gate={"min_fidelity": 0.0, "max_locality_kl": 10})
    runtime = Runtime.open(config, TransformersEngine(config.model))
    try:
        runtime.store.create_agent("ada")
        ids = {name: runtime.store.add("ada", text, "news").item.id for name, (text, _) in FACTS.items()}
        runtime.bake("ada")
        assert runtime.live_adapter("ada") == "ada-v0001"
        before = {name: closed_book(runtime, q) for name, (_, q) in FACTS.items()}
        assert all(name in answer for name, answer in before.items()), before

        plan = runtime.forget(ids["Okafor"])
        assert plan.back_to is None and plan.requeued == (ids["Valdane"],)
        assert runtime.live_adapter("ada") == "ada-v0002"
        assert runtime.store.contents(runtime.store.live("ada")) == [ids["Valdane"]]
        after = {name: closed_book(runtime, q) for name, (_, q) in FACTS.items()}
        assert "Okafor" not in after["Okafor"], after
        assert "Valdane" in after["Valdane"], after
    finally:
        runtime.close()
