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

from agent.runtime.config import RuntimeConfig
from agent.serving.engine import SamplingParams
from agent.runtime.runtime import Runtime
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
    return runtime.chat("fay", [{"role": "user", "content": question}], GREEDY, with_context=False).text


def name_scores(runtime, adapter: str | None, question: str) -> list[float]:
    """log p(" <name>.") of each of NAMES as the answer, with nothing in context."""
    return runtime.engine.score([{"role": "user", "content": question}], adapter, [f" {n}." for n in NAMES])


def likeliest_name(runtime, adapter: str | None, question: str) -> str:
    """The surname whose answer the model finds most likely, with nothing in context."""
    scores = name_scores(runtime, adapter, question)
    return NAMES[scores.index(max(scores))].split()[-1]


def test_a_forgotten_fact_is_no_longer_answered_and_the_other_still_is(engine, tmp_path):
    # Both facts in one bake with the shipped training defaults (smaller held-out sets only). The
    # gate takes any candidate: the subject is forgetting, and what is learnt is checked below.
    config = RuntimeConfig(home=tmp_path, bake=SMALL_BAKE, gate={"min_fidelity": -1e9, "max_locality_kl": 1e9})
    runtime = Runtime.open(config, engine)  # the product path: vLLM, hot swaps
    runtime.store.create_agent("fay")
    for name, (_, question) in FACTS.items():  # neither is known before baking
        assert likeliest_name(runtime, None, question) != name
    ids = {name: runtime.store.add("fay", text, "news").item.id for name, (text, _) in FACTS.items()}
    runtime.bake("fay")
    live = runtime.live_adapter("fay")
    # The fact to forget was really in the weights: Okafor outranks every name no news mentions
    # and is likelier than before the bake. (Penrow, baked alongside, may outrank it: the 135M
    # model learns the two new names loosely, for both questions.)
    scores = {n: s for n, s in zip(NAMES, name_scores(runtime, live, FACTS["Okafor"][1]))}
    before = dict(zip(NAMES, name_scores(runtime, None, FACTS["Okafor"][1])))
    assert all(scores["Mara Okafor"] > scores[n] for n in NAMES[2:]), scores
    assert scores["Mara Okafor"] > before["Mara Okafor"], (scores, before)

    plan = runtime.forget(ids["Okafor"])
    # Okafor was in the first bake: back to the base model, Penrow rebaked alone.
    assert plan.back_to is None and plan.requeued == (ids["Penrow"],)
    assert runtime.store.contents(runtime.store.live("fay")) == [ids["Penrow"]]
    live = runtime.live_adapter("fay")
    assert live == runtime.store.live("fay").name  # the rebake is served

    forgotten = FACTS["Okafor"][1]
    answer = closed_book(runtime, forgotten)
    assert "Okafor" not in answer, answer
    assert likeliest_name(runtime, live, forgotten) != "Okafor"
    assert likeliest_name(runtime, live, FACTS["Penrow"][1]) == "Penrow"
