"""Sample trajectories from a teacher and keep its log-probs, so training never re-runs it.

One KV-cached decoding loop does both: at every step it records the teacher's log-probs at
temperature 1 (the distribution baking matches) and samples the next token at the configured
temperature (the paper samples at >= 1 for diverse trajectories).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Iterator

import torch


@dataclass
class Sampled:
    """One teacher continuation.

    tokens: (T,) int64 generated ids, ending with EOS if the teacher stopped within budget.
    logprobs: (T, k) teacher log-probs of its top-k tokens, or (T, V) full rows when k is None.
    ids: (T, k) int64 token ids of those top-k, or None for full rows.
    """

    tokens: torch.Tensor
    logprobs: torch.Tensor
    ids: torch.Tensor | None


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on ``device`` when enabled, else a no-op."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def _batches(n: int, size: int) -> Iterator[range]:
    for start in range(0, n, size):
        yield range(start, min(start + size, n))


def _forward(causal_lm, input_ids, attention, positions, past, bf16: bool):
    """One decoding step: (KV cache, (B, V) logits of the last position)."""
    with autocast(input_ids.device, bf16):
        out = causal_lm.model(
            input_ids=input_ids,
            attention_mask=attention,
            position_ids=positions,
            past_key_values=past,
            use_cache=True,
        )
        # lm_head on a contiguous (B, d) slice: HF's logits_to_keep hands matmul a strided
        # (B, 1, d) view, which on CPU broadcasts the 49k-wide head into a (B, d, V) copy.
        last = out.last_hidden_state[:, -1, :].contiguous()
        return out.past_key_values, causal_lm.lm_head(last)


def _common_prefix(prompts: list[list[int]]) -> int:
    first, shortest = prompts[0], min(len(p) for p in prompts)
    for i in range(shortest - 1):  # keep >= 1 suffix token per prompt
        if any(p[i] != first[i] for p in prompts):
            return i
    return shortest - 1


def _prefill(causal_lm, batch: list[list[int]], pad_id: int, bf16: bool, device: torch.device):
    """Run the prompts; returns (KV cache, (B, V) next-token logits, attention mask, positions).

    Teacher prompts share a long prefix (template + system prompt + persona), so it is run once
    and its KV cache repeated over the batch. Each row is then laid out as
    ``[shared prefix][left padding][own suffix]``; the mask hides the padding and positions
    count only real tokens, so every row sees exactly its own prompt.
    """
    shared = _common_prefix(batch) if len(batch) > 1 else 0
    past = None
    if shared:
        prefix = torch.tensor(batch[0][:shared], device=device)[None]
        past, _ = _forward(causal_lm, prefix, torch.ones_like(prefix), torch.arange(shared, device=device)[None], None, bf16)
        past.batch_repeat_interleave(len(batch))
    suffixes = [p[shared:] for p in batch]
    width = max(len(s) for s in suffixes)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(batch), shared + width), dtype=torch.long)
    attention[:, :shared] = 1
    for r, suffix in enumerate(suffixes):
        input_ids[r, width - len(suffix) :] = torch.tensor(suffix)
        attention[r, shared + width - len(suffix) :] = 1
    input_ids, attention = input_ids.to(device), attention.to(device)
    positions = (attention.cumsum(-1) - 1).clamp_min(0)
    past, logits = _forward(causal_lm, input_ids, attention, positions[:, shared:], past, bf16)
    return past, logits, attention, positions[:, -1:]


def _draw(weights: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """(B,) token ids drawn with probability proportional to ``weights`` (B, V), by inverse CDF.

    One cumsum and a search, several times faster on CPU than torch.multinomial, which draws
    an exponential variate per vocabulary entry. The uniforms come from a CPU generator, so a
    seed gives the same draws on any device.
    """
    cdf = weights.cumsum_(dim=-1)
    u = torch.rand(weights.shape[0], 1, generator=generator).to(weights.device) * cdf[:, -1:]
    return torch.searchsorted(cdf, u).squeeze(-1).clamp_max(weights.shape[-1] - 1)


@torch.no_grad()
def sample(
    model,
    prompts: list[list[int]],
    *,
    eos_id: int,
    pad_id: int,
    max_new_tokens: int,
    temperature: float,
    topk: int | None,
    generator: torch.Generator,
    batch_size: int,
    bf16: bool,
    on_batch: Callable[[int], None] | None = None,
) -> list[Sampled]:
    """Sample one continuation per prompt (left-padded batches, KV cache).

    ``temperature=0`` decodes greedily.
    ``topk=None`` keeps the full (V,) log-prob row per token in bf16; otherwise the top-k in fp32.
    """
    device = next(model.parameters()).device
    causal_lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    results: list[Sampled] = []
    for rows in _batches(len(prompts), batch_size):
        batch = [prompts[i] for i in rows]
        past, logits, attention, positions = _prefill(causal_lm, batch, pad_id, bf16, device)
        done = torch.zeros(len(batch), dtype=torch.bool, device=device)
        steps_tokens, steps_lp, steps_ids = [], [], []
        for _ in range(max_new_tokens):
            z = logits.float()  # (B, V)
            top = z.amax(dim=-1, keepdim=True)
            weights = (z - top).exp_() if temperature in (0, 1) else ((z - top) / temperature).exp_()
            if temperature in (0, 1):
                lse = top + weights.sum(dim=-1, keepdim=True).log_()
            else:
                lse = torch.logsumexp(z, dim=-1, keepdim=True)
            if topk is None:  # teacher log-probs at temperature 1
                steps_lp.append((z - lse).to(torch.bfloat16).cpu())
            else:
                values, ids = z.topk(topk, dim=-1)
                steps_lp.append((values - lse).cpu())
                steps_ids.append(ids.cpu())
            nxt = z.argmax(dim=-1) if temperature == 0 else _draw(weights, generator)
            nxt = torch.where(done, torch.full_like(nxt, pad_id), nxt)
            steps_tokens.append(nxt.cpu())
            done |= nxt == eos_id
            if bool(done.all()):
                break
            attention = torch.cat([attention, torch.ones_like(attention[:, :1])], dim=-1)
            positions = positions + 1
            past, logits = _forward(causal_lm, nxt[:, None], attention, positions, past, bf16)

        tokens = torch.stack(steps_tokens, dim=1)  # (B, T)
        lps = torch.stack(steps_lp, dim=1)  # (B, T, k or V)
        ids = torch.stack(steps_ids, dim=1) if steps_ids else None
        for r in range(len(batch)):
            eos_at = (tokens[r] == eos_id).nonzero()
            length = int(eos_at[0]) + 1 if len(eos_at) else tokens.shape[1]
            results.append(
                Sampled(
                    tokens=tokens[r, :length].clone(),
                    logprobs=lps[r, :length].clone(),
                    ids=ids[r, :length].clone() if ids is not None else None,
                )
            )
        if on_batch is not None:
            on_batch(len(batch))
    return results
