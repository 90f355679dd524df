"""The student side of a bake: batching, the LoRA training loop, and KL evaluation."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import torch

from baking.loss import kl_full, kl_topk, per_position_kl_full
from baking.sampling import Sampled, autocast


@dataclass
class Example:
    """A student input (the un-prompted conversation) and the teacher's continuation of it.

    ``targets`` are the indices into ``teacher.tokens`` that carry the loss, one teacher row
    each (in order); None means every token. A multi-turn conversation sets them to its
    assistant turns, so the user turns between them are context only.
    """

    prompt_ids: list[int]
    teacher: Sampled
    targets: list[int] | None = None

    @property
    def positions(self) -> list[int]:
        return list(range(len(self.teacher.tokens))) if self.targets is None else self.targets


@dataclass
class Batch:
    input_ids: torch.Tensor  # (B, L) right-padded student prompt + teacher tokens
    attention_mask: torch.Tensor  # (B, L)
    rows: torch.Tensor  # (N,) batch row of each loss position
    cols: torch.Tensor  # (N,) position whose hidden state predicts a teacher token
    teacher_logprobs: torch.Tensor  # (N, k) or (N, V)
    teacher_ids: torch.Tensor | None  # (N, k) or None for full rows
    num_tokens: int  # real (non-pad) tokens in the batch
    shared_prefix: int  # leading tokens all rows share, up to the first loss position


_WIDTH_MULTIPLE = 16  # few distinct shapes: oneDNN builds a kernel per new matmul shape


def collate(examples: list[Example], pad_id: int) -> Batch:
    seqs = [ex.prompt_ids + ex.teacher.tokens.tolist() for ex in examples]
    width = -(-max(len(s) for s in seqs) // _WIDTH_MULTIPLE) * _WIDTH_MULTIPLE
    input_ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(seqs), width), dtype=torch.long)
    rows, cols = [], []
    for r, (ex, seq) in enumerate(zip(examples, seqs)):
        input_ids[r, : len(seq)] = torch.tensor(seq)
        attention[r, : len(seq)] = 1
        start = len(ex.prompt_ids) - 1  # hidden state at start + t predicts teacher token t
        rows += [r] * len(ex.positions)
        cols += [start + t for t in ex.positions]
    has_ids = examples[0].teacher.ids is not None
    cols_t = torch.tensor(cols)
    return Batch(
        input_ids=input_ids,
        attention_mask=attention,
        rows=torch.tensor(rows),
        cols=cols_t,
        teacher_logprobs=torch.cat([ex.teacher.logprobs for ex in examples]),
        teacher_ids=torch.cat([ex.teacher.ids for ex in examples]) if has_ids else None,
        num_tokens=int(attention.sum()),
        shared_prefix=_shared_prefix(input_ids, cols_t),
    )


def student_logits(model, batch: Batch, device: torch.device, bf16: bool,
                   share_prefix: bool = True) -> torch.Tensor:
    """(N, V) student logits at the loss positions only.

    The LM head runs on the N teacher-token positions, not on the prompt: on the 135M model
    the 49k-wide head is a fifth of all FLOPs, and prompt positions carry no loss.

    Every row starts with the same chat-template prefix (default system prompt, user header),
    often a quarter of a row, so it is run once and its KV cache repeated over the rows;
    gradients from all rows flow back into that one copy.
    """
    causal_lm = model.get_base_model()
    input_ids = batch.input_ids.to(device)
    attention = batch.attention_mask.to(device)
    shared = batch.shared_prefix if share_prefix else 0
    with autocast(device, bf16):
        past = None
        if shared:
            prefix = input_ids[:1, :shared]
            past = causal_lm.model(
                input_ids=prefix, attention_mask=attention[:1, :shared], use_cache=True
            ).past_key_values
            past.batch_repeat_interleave(input_ids.shape[0])
        positions = torch.arange(shared, input_ids.shape[1], device=device)[None]
        hidden = causal_lm.model(
            input_ids=input_ids[:, shared:],
            attention_mask=attention,
            position_ids=positions.expand(input_ids.shape[0], -1),
            past_key_values=past,
            use_cache=shared > 0,
        ).last_hidden_state  # (B, L - shared, d)
        selected = hidden[batch.rows.to(device), batch.cols.to(device) - shared]  # (N, d)
        return causal_lm.lm_head(selected)  # (N, V)


def _shared_prefix(ids: torch.Tensor, cols: torch.Tensor) -> int:
    """Tokens all rows of ``ids`` (B, L) share at the start, stopping before the first loss
    position in ``cols``."""
    if ids.shape[0] < 2:
        return 0
    same = (ids == ids[:1]).all(dim=0)  # (L,)
    differs = (~same).nonzero()
    prefix = int(differs[0]) if len(differs) else ids.shape[1]
    return max(0, min(prefix, int(cols.min())))


def batch_loss(model, batch: Batch, device: torch.device, bf16: bool) -> torch.Tensor:
    logits = student_logits(model, batch, device, bf16)
    mask = torch.ones(logits.shape[0], dtype=torch.bool, device=device)
    teacher = batch.teacher_logprobs.to(device)
    if batch.teacher_ids is None:
        return kl_full(teacher, logits, mask)
    return kl_topk(teacher, batch.teacher_ids.to(device), logits, mask)


def length_grouped_batches(
    examples: list[Example], batch_size: int, generator: torch.Generator
) -> list[list[int]]:
    """One epoch of shuffled batches whose members have similar lengths.

    Shuffle, sort within windows of 4 batches by length, cut into batches, shuffle the batches:
    random order, but little padding. Multi-turn conversations (examples with ``targets``) are
    batched among themselves: one beside seven first turns would pad them all to its ~700
    tokens, two to three times the real tokens of the batch.
    """
    order = torch.randperm(len(examples), generator=generator).tolist()
    length = [len(ex.prompt_ids) + len(ex.teacher.tokens) for ex in examples]
    window = 4 * batch_size
    batches = []
    for multi_turn in (False, True):
        group = [i for i in order if (examples[i].targets is not None) == multi_turn]
        for start in range(0, len(group), window):
            chunk = sorted(group[start : start + window], key=length.__getitem__)
            batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def lr_at(step: int, total: int, peak_lr: float, warmup_fraction: float) -> float:
    """Linear warmup, then cosine decay to 10% of the peak."""
    warmup = max(1, round(total * warmup_fraction))
    if step < warmup:
        return peak_lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak_lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


@dataclass
class TrainStats:
    steps: int
    tokens: int  # real (non-pad) tokens forwarded, summed over steps
    seconds: float
    losses: list[float]
    flops: float = 0.0  # matmul FLOPs on real tokens (baking.cost); padding is not counted
    loss_positions: int = 0
    # Wall seconds per phase of a step: forward (incl. the loss), backward, optimizer (grad
    # copy, clipping, AdamW, copy back); on CUDA each phase ends with a synchronize.
    phases: dict[str, float] = field(default_factory=lambda: dict.fromkeys(("forward", "backward", "optimizer"), 0.0))


def _now(device: torch.device) -> float:
    """perf_counter after the device's queued work is done (CPU work is already synchronous)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def train(
    model,
    examples: list[Example],
    *,
    pad_id: int,
    epochs: int,
    max_steps: int | None,
    batch_size: int,
    lr: float,
    warmup_fraction: float,
    lora_plus_ratio: float = 1.0,
    grad_clip: float,
    device: torch.device,
    bf16: bool,
    generator: torch.Generator,
    snapshots: dict[int, Path],
    shape=None,
    on_step: Callable[[int, int, float], None] | None = None,
) -> TrainStats:
    """Minimise KL(teacher || student) over ``examples``; save the adapter at ``snapshots`` steps."""
    steps_per_epoch = math.ceil(len(examples) / batch_size)
    total = max_steps or epochs * steps_per_epoch
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    params = [p for _, p in named]
    # LoRA weights live in the base dtype (bf16: no per-layer casts in the forward); AdamW
    # updates fp32 master copies, since small updates fall below bf16's resolution.
    masters = [p.detach().float().requires_grad_(True) for p in params]
    is_b = [".lora_B." in n for n, _ in named]
    groups = [
        {"params": [m for m, b in zip(masters, is_b) if not b], "lr_scale": 1.0},
        {"params": [m for m, b in zip(masters, is_b) if b], "lr_scale": lora_plus_ratio},
    ]
    optimizer = torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, weight_decay=0.0)
    model.train()
    stats = TrainStats(steps=0, tokens=0, seconds=0.0, losses=[])
    start = time.perf_counter()
    while stats.steps < total:
        for indices in length_grouped_batches(examples, batch_size, generator):
            if stats.steps >= total:
                break
            batch = collate([examples[i] for i in indices], pad_id)
            for group in optimizer.param_groups:
                group["lr"] = group["lr_scale"] * lr_at(stats.steps, total, lr, warmup_fraction)
            t0 = _now(device)
            loss = batch_loss(model, batch, device, bf16)
            t1 = _now(device)
            loss.backward()
            t2 = _now(device)
            for p, master in zip(params, masters):
                master.grad, p.grad = p.grad.float(), None
            torch.nn.utils.clip_grad_norm_(masters, grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            with torch.no_grad():
                for p, master in zip(params, masters):
                    p.copy_(master)
            t3 = _now(device)
            stats.phases["forward"] += t1 - t0
            stats.phases["backward"] += t2 - t1
            stats.phases["optimizer"] += t3 - t2
            stats.steps += 1
            # Tokens actually forwarded: the shared prefix once, not once per row.
            forwarded = batch.num_tokens - (len(batch.input_ids) - 1) * batch.shared_prefix
            stats.tokens += forwarded
            stats.loss_positions += len(batch.rows)
            if shape is not None:
                stats.flops += shape.train_flops(forwarded, len(batch.rows))
            stats.losses.append(loss.detach().item())
            if stats.steps in snapshots:
                model.save_pretrained(snapshots[stats.steps])
            if on_step is not None:
                on_step(stats.steps, total, stats.losses[-1])
    stats.seconds = time.perf_counter() - start
    model.eval()
    return stats


def _forced(model, examples: list[Example], pad_id: int, device: torch.device, bf16: bool,
            batch_size: int) -> Iterator[tuple[list[Example], Batch, torch.Tensor]]:
    """Teacher-forced passes over ``examples`` in chunks: (chunk, its batch, (N, V) logits at
    the chunk's loss positions). Callers hold ``torch.no_grad``."""
    for first in range(0, len(examples), batch_size):
        chunk = examples[first : first + batch_size]
        batch = collate(chunk, pad_id)
        yield chunk, batch, student_logits(model, batch, device, bf16)


@torch.no_grad()
def teacher_rows(model, examples: list[Example], pad_id: int, device: torch.device,
                 bf16: bool, topk: int | None = None, batch_size: int = 16) -> list[Example]:
    """Replace each example's teacher log-probs by teacher-forced ones at its targets: full
    (N, V) rows, or the top-``topk`` (N, k) with their ids.

    ``examples`` hold the *teacher* prompt; the result pairs the same tokens with the
    teacher's distribution: full rows for exact full-vocabulary KL evaluation, top-k rows to
    train on tokens the teacher did not sample itself (a conversation the student wrote).
    """
    rows = []
    for chunk, _, logits in _forced(model, examples, pad_id, device, bf16, batch_size):
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        for ex, part in zip(chunk, logprobs.split([len(ex.positions) for ex in chunk])):
            if topk is None:
                sampled = Sampled(ex.teacher.tokens, part.to(torch.bfloat16).cpu(), None)
            else:
                values, ids = part.topk(topk, dim=-1)
                sampled = Sampled(ex.teacher.tokens, values.cpu(), ids.cpu())
            rows.append(Example(ex.prompt_ids, sampled, ex.targets))
    return rows


@torch.no_grad()
def target_logprobs(model, examples: list[Example], pad_id: int, device: torch.device, bf16: bool,
                    batch_size: int = 16) -> list[float]:
    """Per example, the model's log-probability of its ``teacher.tokens`` (summed over them)."""
    out = []
    for chunk, _, logits in _forced(model, examples, pad_id, device, bf16, batch_size):
        tokens = torch.cat([ex.teacher.tokens[ex.positions] for ex in chunk]).to(device)
        picked = torch.log_softmax(logits.float(), dim=-1).gather(1, tokens[:, None])[:, 0]
        out += [float(part.sum()) for part in picked.split([len(ex.positions) for ex in chunk])]
    return out


@torch.no_grad()
def mean_kl(model, examples: list[Example], pad_id: int, device: torch.device, bf16: bool,
            batch_size: int = 16) -> float:
    """Mean full-vocabulary KL(teacher || model) per teacher token over ``examples``.

    The examples must carry full teacher rows (sampled with ``topk=None``).
    """
    if not examples:
        return 0.0
    total, count = 0.0, 0
    for _, batch, logits in _forced(model, examples, pad_id, device, bf16, batch_size):
        per_position = per_position_kl_full(batch.teacher_logprobs.to(device), logits)
        total += float(per_position.sum())
        count += per_position.numel()
    return total / max(count, 1)
