"""What a bake costs: the FLOPs it actually runs, and an estimate of its wall time here.

FLOP accounting (matmuls only; attention scores, norms and the optimizer are left out, they are
a few percent on short sequences):

- a forward pass costs 2·N_body per token through the transformer blocks and 2·d·V per position
  that goes through the LM head (only positions with a loss, or the last one when decoding);
- the backward pass of a frozen base with LoRA costs the same again (gradients with respect to
  activations only), so training costs 4·N_body per forwarded token + 4·d·V per loss position.

The estimate divides each phase's FLOPs by the machine's measured matmul rate times an
efficiency measured on both machine classes (benchmarks/results/persona_bake*.md set the
estimate beside the measured time).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

# Share of the probe's matmul rate (a 1024³ product) each phase reaches on the 135M model, per
# dtype: measured on a 2-core AVX512-BF16 CPU in bf16 and on the same CPU capped to AVX2 in fp32
# (persona and 4-item news bakes; benchmarks/results/persona_bake*.md check the estimate).
# Decoding is small batched matmuls; training and evaluation are larger ones.
EFFICIENCY = {
    "bf16": {"sampling": 0.30, "training": 0.45, "eval": 0.55},
    "fp32": {"sampling": 0.42, "training": 0.62, "eval": 0.90},
}
FIXED_S = 6.0  # process start, model load, adapter save


@dataclass(frozen=True)
class ModelShape:
    body_params: int  # parameters of the transformer blocks (no embeddings, no LM head)
    hidden: int  # d
    vocab: int  # V

    @classmethod
    def of(cls, causal_lm) -> "ModelShape":
        body = sum(p.numel() for n, p in causal_lm.model.named_parameters()
                   if "embed_tokens" not in n and "lora_" not in n)
        return cls(body, causal_lm.config.hidden_size, causal_lm.lm_head.out_features)

    def forward_flops(self, tokens: float, head_positions: float) -> float:
        return 2 * self.body_params * tokens + 2 * self.hidden * self.vocab * head_positions

    def train_flops(self, tokens: float, loss_positions: float) -> float:
        return 2 * self.forward_flops(tokens, loss_positions)


@dataclass(frozen=True)
class BakeEstimate:
    seconds: float
    dtype: str
    flops_per_s: float  # the probe's matmul rate in that dtype
    phases: dict[str, float]  # seconds per phase

    def line(self) -> str:
        return (f"~{self.seconds:.0f} s on this machine ({self.dtype}, "
                f"{self.flops_per_s / 1e9:.0f} GFLOP/s matmul)")

    def as_dict(self) -> dict:
        return asdict(self)


def estimate_bake(shape: ModelShape, *, dtype: str, flops_per_s: float, sampled_prompts: list[int],
                  max_new_tokens: int, question_prompts: list[int], train_prompts: list[int],
                  conversations: list[tuple[int, int]], epochs_or_steps: tuple[int, int | None], batch_size: int,
                  eval_prompts: list[int], min_steps: int = 1) -> BakeEstimate:
    """Wall seconds a bake will take here, from its size before any sampling.

    Args are token counts: ``sampled_prompts`` the teacher prompt lengths sampled at
    ``max_new_tokens`` (training, held-out and control inputs, replay), ``question_prompts``
    those of the model-written questions (32 new tokens), ``train_prompts`` the student prompt
    lengths of the training inputs, ``conversations`` (tokens, loss positions) of each multi-turn
    conversation (teacher-forced once, then trained on like an input), ``eval_prompts`` the student prompts of the held-out
    and control inputs (evaluated three times: teacher rows, before and after).
    """
    new = max_new_tokens
    sampling = sum(shape.forward_flops(p, 0) + shape.forward_flops(new, new) for p in sampled_prompts)
    sampling += sum(shape.forward_flops(p, 0) + shape.forward_flops(32, 32) for p in question_prompts)
    sampling += sum(shape.forward_flops(tokens, loss) for tokens, loss in conversations)
    rows = len(train_prompts) + len(conversations)
    epochs, max_steps = epochs_or_steps
    epoch_steps = epochs * -(-rows // batch_size)
    steps = max_steps or max(epoch_steps, min_steps)
    passes = epochs if steps == epoch_steps else steps * batch_size / max(rows, 1)
    training = passes * (sum(shape.train_flops(p + new, new) for p in train_prompts)
                         + sum(shape.train_flops(tokens, loss) for tokens, loss in conversations))
    evaluation = 3 * sum(shape.forward_flops(p + new, new) for p in eval_prompts)
    efficiency = EFFICIENCY.get(dtype, EFFICIENCY["fp32"])
    phases = {
        "sampling": sampling / (efficiency["sampling"] * flops_per_s),
        "training": training / (efficiency["training"] * flops_per_s),
        "eval": evaluation / (efficiency["eval"] * flops_per_s),
        "fixed": FIXED_S,
    }
    return BakeEstimate(sum(phases.values()), dtype, flops_per_s, phases)
