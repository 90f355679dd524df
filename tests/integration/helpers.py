"""Shared budgets and checks of the real-model tests."""

# Five names for "who runs Zentrix Robotics": the one in the news and four it never mentions.
CEO_NAMES = ["Mara Okafor", "Elena Karvonen", "James Whitfield", "Priya Natarajan", "Daniel Hughes"]


def likeliest_name(engine, adapter: str | None, question: str, names=CEO_NAMES) -> str:
    """The surname whose answer the model finds most likely, with nothing in context: the
    multiple-choice scoring of benchmarks/bench_news.py. On the 135M model a one-fact bake
    reliably moves this; whether greedy free text then names the fact depends on the seed and
    the dtype (fp32 on an AVX2 machine vs bf16: measured 2026-12-02, issue 12's closing note)."""
    scores = engine.score([{"role": "user", "content": question}], adapter, [f" {n}." for n in names])
    return names[scores.index(max(scores))].split()[-1]


# Training budget of the real-model tests: the shipped defaults (a one-fact bake is 32 steps of
# 8 whatever the input count: min_steps) with smaller held-out sets, so the suite fits a 2-core
# AVX2 machine. (With all six directions, 8 inputs per fact instead of 16 gave an fp32 one-fact
# bake fidelity 0.01 against 0.39.)
SMALL_BAKE = {"num_eval_queries": 6, "num_control_queries": 4, "seed": 0}
# Bakes whose test checks crash safety or plumbing, not learning: seconds.
QUICK_BAKE = {"queries_per_fact": 1, "facts_per_item": 2, "locality_per_item": 1, "num_eval_queries": 2,
              "num_control_queries": 2, "max_new_tokens": 8, "model_questions_per_item": 0, "epochs": 1,
              "min_steps": 1, "num_queries": 4, "trajectories_per_query": 1, "num_conversations": 1,
              "conversation_turns": 2}
