"""The one budget for bakes of the tiny random Llama in unit tests: seconds, not fidelity."""

TINY = {"num_queries": 4, "trajectories_per_query": 1, "num_eval_queries": 2, "num_control_queries": 2,
        "max_new_tokens": 6, "model_questions_per_item": 0, "queries_per_fact": 1, "facts_per_item": 2,
        "locality_per_item": 1, "min_steps": 1, "lora_rank": 4, "epochs": 1, "batch_size": 2,
        "num_conversations": 1, "conversation_turns": 2}


def tiny_bake(**overrides) -> dict:
    """``TINY`` with ``overrides`` applied."""
    return {**TINY, **overrides}
