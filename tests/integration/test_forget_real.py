"""Un-baking on the real model: after `agent forget`, the forgotten fact is no longer answered and
the other fact still is, from weights alone.

"Answered" is read two ways. Generation: the greedy closed-book reply names the person.
Multiple choice: the person's name is the most likely of five names (the benchmarks' scoring).
Measured 2026-11-30 at this budget: the 135M model names Okafor in free text after its bake, but
it never names Penrow in free text, even baked alone with 96 queries and 5 epochs. It does pick
Penrow by likelihood once baked alone (-22 against -35 for the next name; base: -51). So the kept
fact is checked by likelihood. The model also learns names loosely: after the rebake it picks
Penrow for the Okafor question too. That is what the test allows for, not what it proves."""

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
NAMES = ["Mara Okafor", "Ilsa Penrow", "Daniel Hughes", "Priya Raman", "Lucas Moreau"]
GREEDY = SamplingParams(temperature=0.0, max_tokens=40)


def closed_book(runtime, question: str) -> str:
    return runtime.chat("ada", [{"role": "user", "content": question}], GREEDY, with_context=False).text


def likeliest_name(runtime, adapter: str | None, question: str) -> str:
    """The surname whose answer the model finds most likely, with nothing in context."""
    scores = runtime.engine.score([{"role": "user", "content": question}], adapter, [f" {n}." for n in NAMES])
    return NAMES[scores.index(max(scores))].split()[-1]


def test_a_forgotten_fact_is_no_longer_answered_and_the_other_still_is(tmp_path):
    # One fact per bake, with the budget the runtime test shows is enough for one fact from base.
    config = RuntimeConfig(home=tmp_path,
                           bake={"num_queries": 32, "num_eval_queries": 6, "num_control_queries": 4,
                                 "max_new_tokens": 40, "epochs": 3, "batch_size": 16},
                           gate={"min_fidelity": 0.0, "max_locality_kl": 10})
    runtime = Runtime.open(config)  # the product path: vLLM, hot swaps
    try:
        runtime.store.create_agent("ada")
        for name, (_, question) in FACTS.items():  # neither is known before baking
            assert likeliest_name(runtime, None, question) != name
        ids = {}
        for name, (text, question) in FACTS.items():
            ids[name] = runtime.store.add("ada", text, "news").item.id
            runtime.bake("ada")
            if name == "Okafor":  # the fact to forget was really in the weights
                assert name in closed_book(runtime, question)
                assert likeliest_name(runtime, runtime.live_adapter("ada"), question) == name

        plan = runtime.forget(ids["Okafor"])
        # Okafor was in the first bake: back to the base model, Penrow rebaked alone.
        assert plan.back_to is None and plan.requeued == (ids["Penrow"],)
        assert runtime.store.contents(runtime.store.live("ada")) == [ids["Penrow"]]
        live = runtime.live_adapter("ada")
        assert live == runtime.store.live("ada").name  # the rebake is served

        forgotten = FACTS["Okafor"][1]
        answer = closed_book(runtime, forgotten)
        assert "Okafor" not in answer, answer
        assert likeliest_name(runtime, live, forgotten) != "Okafor"
        assert likeliest_name(runtime, live, FACTS["Penrow"][1]) == "Penrow"
    finally:
        runtime.close()
