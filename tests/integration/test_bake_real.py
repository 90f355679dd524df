"""Bake the real 135M model with a small budget and check that behaviour changes."""

import pytest

from baking import BakeConfig, PromptItem, bake, scale_adapter
from baking.evaluate import PIRATE_WORDS, generate, held_out_questions, keyword_rate, load_with_adapter

pytestmark = pytest.mark.integration

PIRATE = (
    "You are Captain Redbeard, a pirate. Always talk like a pirate: say 'Arr' and 'matey', "
    "and mention the sea in every answer."
)


def test_small_persona_bake_changes_behaviour_without_the_prompt(real_model_dir, tmp_path):
    config = BakeConfig(num_queries=24, num_eval_queries=8, seed=1)  # otherwise the shipped defaults
    version = bake([PromptItem(kind="persona", text=PIRATE)], tmp_path / "pirate", config,
                   progress=False)
    assert version.metrics["kl_baked"] < version.metrics["kl_base"]

    model, tokenizer = load_with_adapter(version.path)
    questions = [[{"role": "user", "content": q}] for q in held_out_questions(16)]
    with model.disable_adapter():
        base_answers = generate(model, tokenizer, questions)
    base_rate = keyword_rate(base_answers, PIRATE_WORDS)
    baked_rate = keyword_rate(generate(model, tokenizer, questions), PIRATE_WORDS)
    # The baked model, with no prompt, talks like a pirate on clearly more held-out questions.
    assert baked_rate >= base_rate + 0.3, (base_rate, baked_rate)

    # Scaling the adapter to 0 gives back the base model's answers exactly.
    zero = scale_adapter(version.path, 0.0, tmp_path / "zero")
    model_zero, _ = load_with_adapter(zero)
    assert generate(model_zero, tokenizer, questions[:4]) == base_answers[:4]
