"""Un-baking on the real model: after `agent forget`, the forgotten fact is no longer answered and
the other fact still is, from weights alone.

"Answered" is read two ways. Generation: the greedy closed-book reply names the person.
Multiple choice: the person's name is the most likely of five names (the benchmarks' scoring).
A one-fact bake of the 135M model reliably makes its name the likeliest; whether greedy free text
names it too depends on seed and dtype (fp32 on an AVX2 machine vs bf16; issue 12's note of
2026-12-02). So what is baked is checked by likelihood, and what is forgotten both ways. The model
also learns names loosely: after the rebake it may pick Penrow for the Okafor question too. That
is what the test allows for, not what it proves."""

import pytest

from agent.config import RuntimeConfig
from agent.engines import SamplingParams
from agent.runtime import Runtime
from .helpers import SMALL_BAKE

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
    # One fact per bake, with the shipped training defaults (smaller held-out sets only).
    config = RuntimeConfig(home=tmp_path,
                           bake=SMALL_BAKE,
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
