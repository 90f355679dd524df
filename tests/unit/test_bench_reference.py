"""The reference baking loop of benchmarks/bench_reference.py on the tiny random Llama."""

import math

import pytest
import torch

from baking import BakeConfig, PromptItem
from baking.queries import ListQuerySource
from benchmarks.bench_reference import (
    adapter_kl,
    build_held_out,
    kl_per_token,
    run_reference,
)

PERSONA = PromptItem(kind="persona", text="You always answer in capital letters.")
QUERIES = ListQuerySource([f"Tell me about the number {i}." for i in range(40)])


def tiny_config(model_dir) -> BakeConfig:
    return BakeConfig(model=str(model_dir), num_queries=4, trajectories_per_query=2,
                      num_eval_queries=3, max_new_tokens=8, lora_rank=4, lr=1e-2, batch_size=4, seed=0)


def test_kl_per_token_is_zero_for_equal_distributions_and_matches_the_formula():
    teacher_logits, student_logits = torch.randn(3, 5), torch.randn(3, 5)
    teacher = torch.log_softmax(teacher_logits, dim=-1)
    torch.testing.assert_close(kl_per_token(teacher, teacher_logits), torch.zeros(3), atol=1e-6, rtol=0)
    expected = (teacher.exp() * (teacher - torch.log_softmax(student_logits, dim=-1))).sum(-1)
    torch.testing.assert_close(kl_per_token(teacher, student_logits), expected)


def test_reference_trains_two_steps_and_reports_its_clock(tiny_model):
    config = tiny_config(tiny_model)
    held_out = build_held_out([PERSONA], config, QUERIES)
    assert len(held_out) == 3
    vocab = held_out[0].teacher_logprobs.shape[-1]
    assert all(ex.teacher_logprobs.shape == (len(ex.tokens), vocab) for ex in held_out)
    kl_base = adapter_kl(config, None, held_out)
    assert kl_base > 0

    result = run_reference([PERSONA], config, held_out, target_kl=0.0, source=QUERIES,
                           planned_steps=2, max_steps=2, eval_every=1, max_seconds=600)

    assert not result.reached and result.steps == 2 and result.num_trajectories == 8
    assert [step for step, _, _ in result.curve] == [0, 1, 2]
    # Step 0 is the untrained LoRA (B = 0): exactly the base model.
    assert result.curve[0][2] == pytest.approx(kl_base, rel=1e-5)
    assert all(math.isfinite(kl) for _, _, kl in result.curve)
    assert result.curve[-1][2] < result.curve[0][2]  # two steps towards the teacher
    assert min(result.load_s, result.sampling_s, result.training_s, result.teacher_s) > 0
    assert result.teacher_s < result.training_s
    assert result.seconds == pytest.approx(result.load_s + result.sampling_s + result.training_s)
    assert result.curve[-1][1] == pytest.approx(result.seconds)  # evaluation is off the clock


def test_reference_stops_as_soon_as_it_reaches_the_target(tiny_model):
    config = tiny_config(tiny_model)
    held_out = build_held_out([PERSONA], config, QUERIES)
    result = run_reference([PERSONA], config, held_out, target_kl=math.inf, source=QUERIES,
                           planned_steps=2, max_steps=2, eval_every=1, max_seconds=600)
    assert result.reached and result.steps == 0 and result.training_s == 0
