"""Ours vs the reference algorithm: wall time to the same held-out KL.

    .venv/bin/python -m benchmarks.bench_reference --runs 3
    .venv/bin/python -m benchmarks.bench_reference --quick   # 1 run, smaller budget on both sides

Goal: our baker reaches the same held-out KL at least 4x faster than the reference.

The reference is Prompt Baking as the paper's public code runs it, written out below
(:func:`run_reference`):

- trajectories from Hugging Face ``model.generate`` (do_sample at the BakeConfig temperature,
  no top-k/top-p cut, so the same distribution ours samples), one prompt at a time with
  ``num_return_sequences = trajectories_per_query``;
- every step the teacher (the prompted base model: adapter disabled, prompt in context) runs a
  full forward with full-vocabulary logits; nothing is cached between steps;
- fp32 weights and compute throughout;
- loss: KL(teacher || student) over the full vocabulary, mean per teacher token (as ours);
- the same LoRA (rank, alpha, target modules), AdamW (lr, no weight decay), warmup + cosine
  schedule, gradient clip, batch size, prompt, seed and training queries as ours.

Per seed:

1. ours: ``bake()`` with the default BakeConfig at that seed; its clock is ``wall_s`` (model
   load to adapter written, its own evaluation included);
2. one held-out set shared by both: ours' held-out queries (the same draw as ``bake()``), one
   teacher trajectory each from ``generate`` on the fp32 base model, and full fp32 teacher
   log-prob rows by teacher forcing;
3. the held-out KL of the base and of our adapter (loaded in fp32) on that set;
4. the reference, evaluated on the same set every ``--eval-every`` steps (evaluation off its
   clock), until its KL is <= ours, or it hits the step/time cap ("did not reach").

Writes {out}/reference.{json,md}. Medians across runs are quoted.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import random
import shlex
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F

from baking import BakeConfig, PromptItem, bake
from baking.hardware import resolve_device, synchronize
from baking.model import load_model
from baking.queries import DefaultQuerySource, QuerySource
from baking.render import Query, encode, student_messages, teacher_messages
from baking.train import lr_at
from benchmarks.bench_persona_bake import PIRATE

RESULTS = Path(__file__).parent / "results"
GOAL_SPEEDUP = 4.0
# --quick: a smaller budget, the same for both sides.
QUICK_BUDGET = dict(num_queries=8, num_eval_queries=4, max_new_tokens=16, batch_size=8, epochs=2)


@dataclass
class HeldOutExample:
    """A held-out input with one teacher trajectory and the teacher's full distribution on it."""

    student_ids: list[int]  # the un-prompted conversation + generation prompt
    tokens: torch.Tensor  # (T,) teacher trajectory, ending with EOS if the teacher stopped
    teacher_logprobs: torch.Tensor  # (T, V) fp32 teacher log-probs (temperature 1), on CPU


@dataclass
class ReferenceResult:
    reached: bool  # held-out KL <= target before the cap
    steps: int
    load_s: float
    sampling_s: float  # generate() for all training trajectories
    training_s: float  # optimizer steps, the teacher recompute included; evaluation excluded
    teacher_s: float  # of training_s: the teacher's full forward each step
    num_trajectories: int = 0
    curve: list[tuple[int, float, float]] = field(default_factory=list)  # (step, clock s, KL)

    @property
    def seconds(self) -> float:
        """The reference's clock: load + sampling + training, up to the target or the cap."""
        return self.load_s + self.sampling_s + self.training_s

    @property
    def best_kl(self) -> float:
        return min(kl for _, _, kl in self.curve)


def _now(device: torch.device) -> float:
    synchronize(device)  # the device's queued work counts where it was issued
    return time.perf_counter()


def load_fp32(model_ref: str, device: torch.device):
    """(model, tokenizer) in fp32 with the default (SDPA) attention, as plain transformers loads it."""
    return load_model(model_ref, device=str(device), dtype=torch.float32)


def draw_queries(items: Sequence[PromptItem], config: BakeConfig,
                 source: QuerySource) -> tuple[list[Query], list[Query]]:
    """(held-out, training) queries, drawn in the order ``bake()`` draws them at this seed."""
    rng = random.Random(config.seed)
    held_out = source.draw(items, config.num_eval_queries, rng, held_out=True)
    return held_out, source.draw(items, config.num_queries, rng, held_out=False)


@torch.no_grad()
def sample_with_generate(model, tokenizer, prompts: list[list[int]], config: BakeConfig,
                         per_prompt: int) -> list[torch.Tensor]:
    """``per_prompt`` trajectories (T,) per prompt from ``model.generate``, one prompt a call.

    top_k=0 and top_p=1 switch off generate's default top-k=50 cut: the reference samples the
    same distribution as ours (softmax at ``config.temperature``).
    """
    device = next(model.parameters()).device
    trajectories = []
    for prompt in prompts:
        ids = torch.tensor([prompt], device=device)
        out = model.generate(
            ids, attention_mask=torch.ones_like(ids), do_sample=True,
            temperature=config.temperature, top_k=0, top_p=1.0,
            max_new_tokens=config.max_new_tokens, num_return_sequences=per_prompt,
            pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        )
        for row in out[:, ids.shape[1]:].cpu():  # generate pads finished rows after EOS
            eos = (row == tokenizer.eos_token_id).nonzero()
            trajectories.append(row[: int(eos[0]) + 1] if len(eos) else row)
    return trajectories


def logits_at(model, prompts: list[list[int]], trajectories: list[torch.Tensor], pad_id: int,
              device: torch.device) -> torch.Tensor:
    """(N, V) logits at the positions that predict the trajectories' N tokens in all.

    One plain forward of the right-padded ``prompt + trajectory`` rows, logits at every position.
    """
    seqs = [p + t.tolist() for p, t in zip(prompts, trajectories)]
    ids = torch.full((len(seqs), max(map(len, seqs))), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    rows, cols = [], []
    for r, (prompt, seq) in enumerate(zip(prompts, seqs)):
        ids[r, : len(seq)], mask[r, : len(seq)] = torch.tensor(seq), 1
        rows += [r] * (len(seq) - len(prompt))
        cols += range(len(prompt) - 1, len(seq) - 1)  # position i predicts token i + 1
    logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits  # (B, L, V)
    return logits[torch.tensor(rows, device=device), torch.tensor(cols, device=device)]


def kl_per_token(teacher_logprobs: torch.Tensor, student_logits: torch.Tensor) -> torch.Tensor:
    """(N,) full-vocabulary KL(teacher || student) from (N, V) teacher log-probs and student logits."""
    student = F.log_softmax(student_logits.float(), dim=-1)
    return F.kl_div(student, teacher_logprobs.float(), log_target=True, reduction="none").sum(-1)


def build_held_out(items: Sequence[PromptItem], config: BakeConfig,
                   source: QuerySource) -> list[HeldOutExample]:
    """Ours' held-out queries with a ``generate`` trajectory and fp32 teacher rows each."""
    device = resolve_device(config.device)
    model, tokenizer = load_fp32(config.model, device)
    model.eval()
    queries, _ = draw_queries(items, config, source)
    prompts = [encode(tokenizer, teacher_messages(items, q)) for q in queries]
    torch.manual_seed(10_000 + config.seed)  # a stream apart from the reference's training one
    trajectories = sample_with_generate(model, tokenizer, prompts, config, per_prompt=1)
    held_out = []
    with torch.no_grad():
        for q, prompt, tokens in zip(queries, prompts, trajectories):
            rows = logits_at(model, [prompt], [tokens], tokenizer.pad_token_id, device)
            teacher = F.log_softmax(rows.float(), dim=-1).cpu()  # (T, V)
            held_out.append(HeldOutExample(encode(tokenizer, student_messages(q)), tokens, teacher))
    return held_out


@torch.no_grad()
def held_out_kl(model, held_out: list[HeldOutExample], pad_id: int, device: torch.device,
                batch_size: int = 8) -> float:
    """Mean full-vocabulary KL(teacher || model) per teacher token over ``held_out``, un-prompted."""
    total, count = 0.0, 0
    for first in range(0, len(held_out), batch_size):
        chunk = held_out[first : first + batch_size]
        logits = logits_at(model, [ex.student_ids for ex in chunk], [ex.tokens for ex in chunk],
                           pad_id, device)
        teacher = torch.cat([ex.teacher_logprobs for ex in chunk]).to(device)
        kl = kl_per_token(teacher, logits)
        total, count = total + float(kl.sum()), count + kl.numel()
    return total / max(count, 1)


def _shuffled_batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[list[int]]:
    """Endless epochs of shuffled index batches."""
    while True:
        order = torch.randperm(n, generator=generator).tolist()
        for first in range(0, n, batch_size):
            yield order[first : first + batch_size]


def run_reference(
    items: Sequence[PromptItem],
    config: BakeConfig,
    held_out: list[HeldOutExample],
    target_kl: float,
    *,
    source: QuerySource,
    planned_steps: int,
    max_steps: int,
    eval_every: int,
    max_seconds: float,
) -> ReferenceResult:
    """Train the reference until its held-out KL <= ``target_kl``, ``max_steps`` or ``max_seconds``.

    The lr schedule (warmup + cosine to 10%) spans ``planned_steps`` and stays at its floor after.
    The held-out KL is measured at step 0 and every ``eval_every`` steps, off the clock.
    """
    from peft import LoraConfig, get_peft_model

    if config.lora_plus_ratio != 1.0:
        raise ValueError(f"the reference has one AdamW lr; got lora_plus_ratio {config.lora_plus_ratio}, use 1")
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)  # generate() draws from the global generator
    generator = torch.Generator().manual_seed(config.seed)
    t = _now(device)
    model, tokenizer = load_fp32(config.model, device)
    pad_id = tokenizer.pad_token_id
    result = ReferenceResult(reached=False, steps=0, load_s=_now(device) - t, sampling_s=0.0,
                             training_s=0.0, teacher_s=0.0)

    # Trajectories: the prompted base model, generate(), the same training queries as ours.
    t = _now(device)
    _, queries = draw_queries(items, config, source)
    per = config.trajectories_per_query
    prompts = [encode(tokenizer, teacher_messages(items, q)) for q in queries]
    trajectories = sample_with_generate(model, tokenizer, prompts, config, per)
    teacher_prompts = [p for p in prompts for _ in range(per)]
    student_prompts = [encode(tokenizer, student_messages(q)) for q in queries for _ in range(per)]
    result.sampling_s = _now(device) - t
    result.num_trajectories = len(trajectories)

    lora = LoraConfig(r=config.lora_rank, lora_alpha=config.lora_alpha, lora_dropout=0.0,
                      target_modules=list(config.target_modules), bias="none", task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0)

    def evaluate() -> bool:
        model.eval()
        kl = held_out_kl(model, held_out, pad_id, device)
        model.train()
        result.curve.append((result.steps, result.seconds, kl))
        return kl <= target_kl

    result.reached = evaluate()
    batches = _shuffled_batches(len(trajectories), config.batch_size, generator)
    while not result.reached and result.steps < max_steps and result.seconds < max_seconds:
        indices = next(batches)
        # 1. learning rate: ours' schedule over the planned steps, its floor after them
        for group in optimizer.param_groups:
            group["lr"] = lr_at(min(result.steps, planned_steps - 1), planned_steps, config.lr,
                                config.warmup_fraction)
        # 2. teacher: a full forward with the prompt, every step, adapter off
        t = _now(device)
        trajs = [trajectories[i] for i in indices]
        with model.disable_adapter(), torch.no_grad():
            teacher = F.log_softmax(
                logits_at(model, [teacher_prompts[i] for i in indices], trajs, pad_id, device).float(), dim=-1
            )  # (N, V)
        result.teacher_s += _now(device) - t
        # 3. student forward/backward without the prompt, 4. clip, 5. step
        student = logits_at(model, [student_prompts[i] for i in indices], trajs, pad_id, device)
        loss = kl_per_token(teacher, student).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        result.training_s += _now(device) - t
        result.steps += 1
        # 6. evaluate (off the clock), 7. the loop condition stops
        if result.steps % eval_every == 0 or result.steps >= max_steps:
            result.reached = evaluate()
    if result.curve[-1][0] != result.steps:  # stopped by the time cap between evaluations
        result.reached = evaluate()
    return result


def adapter_kl(config: BakeConfig, adapter: Path | None, held_out: list[HeldOutExample]) -> float:
    """Held-out KL of the fp32 base model, with ``adapter`` loaded if given."""
    from peft import PeftModel

    device = resolve_device(config.device)
    model, tokenizer = load_fp32(config.model, device)
    if adapter is not None:
        model = PeftModel.from_pretrained(model, str(adapter))
    model.eval()
    return held_out_kl(model, held_out, tokenizer.pad_token_id, device)


def bench_seed(seed: int, args: argparse.Namespace, budget: dict) -> dict:
    items = [PromptItem(kind="persona", text=PIRATE)]
    source = DefaultQuerySource()
    model = {"model": args.model} if args.model else {}
    config = BakeConfig(seed=seed, device=args.device, **model, **budget)
    adapter = args.workdir / f"pirate-seed{seed}"
    ours = bake(items, adapter, config, overwrite=True, progress=False).metrics
    gc.collect()

    held_out = build_held_out(items, config, source)
    kl_base = adapter_kl(config, None, held_out)
    kl_ours = adapter_kl(config, adapter, held_out)
    gc.collect()

    planned = ours["train_steps"]
    ref = run_reference(items, config, held_out, kl_ours, source=source, planned_steps=planned,
                        max_steps=math.ceil(args.cap_factor * planned), eval_every=args.eval_every,
                        max_seconds=args.max_reference_s)
    gc.collect()
    return {
        "seed": seed,
        "held_out_tokens": sum(len(ex.tokens) for ex in held_out),
        "kl_base": kl_base,  # the un-adapted model on the shared held-out set
        "ours": {
            "wall_s": ours["wall_s"],
            "kl": kl_ours,
            "fidelity": 1 - kl_ours / kl_base,
            "train_steps": ours["train_steps"],
            "num_trajectories": ours["num_trajectories"],
            "own_kl_baked": ours["kl_baked"],  # ours' own held-out set, its own dtype
            "own_fidelity": ours["fidelity"],
            **{k: ours[k] for k in ("load_s", "sampling_s", "training_s", "eval_s", "dtype")},
        },
        "reference": {
            "reached": ref.reached,
            "seconds": ref.seconds,
            "best_kl": ref.best_kl,
            **{k: v for k, v in asdict(ref).items() if k != "reached"},
        },
        "speedup": ref.seconds / ours["wall_s"],  # a lower bound when the reference did not reach
    }


def machine(device: str) -> str:
    from benchmarks.common import cpu_model

    cpu = cpu_model()
    text = f"{os.cpu_count()} cores, {cpu}, torch {torch.__version__}, device {device}"
    if torch.device(device).type == "cuda":
        text += f" ({torch.cuda.get_device_name(torch.device(device))})"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="seeds 0..runs-1; medians are quoted")
    parser.add_argument("--quick", action="store_true", help="1 run on a smaller budget, both sides")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default=None, help="model ref; BakeConfig's default if not given")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    parser.add_argument("--workdir", type=Path, default=Path("runs/bench_reference"))
    parser.add_argument("--eval-every", type=int, default=1, help="reference steps between KL checks")
    parser.add_argument("--cap-factor", type=float, default=2.0,
                        help="the reference stops after this many times ours' training steps")
    parser.add_argument("--max-reference-s", type=float, default=1800.0,
                        help="the reference stops when its clock passes this")
    args = parser.parse_args()
    runs = 1 if args.quick else args.runs
    budget = QUICK_BUDGET if args.quick else {}
    args.workdir.mkdir(parents=True, exist_ok=True)

    results = []
    for seed in range(runs):
        r = bench_seed(seed, args, budget)
        results.append(r)
        status = "reached" if r["reference"]["reached"] else "did NOT reach"
        print(f"seed {seed}: ours {r['ours']['wall_s']:.1f} s (KL {r['ours']['kl']:.4f}); reference "
              f"{status} it in {r['reference']['seconds']:.1f} s, {r['reference']['steps']} steps "
              f"(best KL {r['reference']['best_kl']:.4f}); speed-up {r['speedup']:.2f}x", flush=True)

    def median(side: str, key: str) -> float:
        return statistics.median(r[side][key] if side else r[key] for r in results)

    summary = {
        "command": "python -m benchmarks.bench_reference " + shlex.join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "machine": machine(args.device),
        "model": args.model or BakeConfig().model,
        "budget": BakeConfig(**budget).model_dump(include={"num_queries", "trajectories_per_query",
                                                           "num_eval_queries", "max_new_tokens",
                                                           "batch_size", "epochs", "lr", "lora_rank"}),
        "eval_every": args.eval_every,
        "cap_factor": args.cap_factor,
        "max_reference_s": args.max_reference_s,
        "runs": results,
        "median": {
            "ours_wall_s": median("ours", "wall_s"),
            "ours_kl": median("ours", "kl"),
            "kl_base": median("", "kl_base"),
            "reference_s": median("reference", "seconds"),
            "reference_load_s": median("reference", "load_s"),
            "reference_sampling_s": median("reference", "sampling_s"),
            "reference_training_s": median("reference", "training_s"),
            "reference_teacher_s": median("reference", "teacher_s"),
            "reference_steps": median("reference", "steps"),
            "ours_train_steps": median("ours", "train_steps"),
            "speedup": median("", "speedup"),
        },
        "reached": sum(r["reference"]["reached"] for r in results),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "reference.json").write_text(json.dumps(summary, indent=2))
    (args.out / "reference.md").write_text(render_markdown(summary))
    print(render_markdown(summary))


def render_markdown(s: dict) -> str:
    m, n = s["median"], len(s["runs"])
    all_reached = s["reached"] == n
    speedup = f"{m['speedup']:.2f}×" if all_reached else f"≥ {m['speedup']:.2f}× (lower bound)"
    met = "met" if m["speedup"] >= GOAL_SPEEDUP else "not met"
    lines = [
        "# Ours vs the reference algorithm",
        "",
        f"Command: `{s['command']}`",
        "",
        f"Date: {s['date']}. Machine: {s['machine']}. Model: {s['model']}. {n} run(s), medians.",
        "",
        f"Budget (both sides): {s['budget']}. Reference evaluated every {s['eval_every']} step(s), "
        f"capped at {s['cap_factor']}× ours' steps or {s['max_reference_s']:.0f} s.",
        "",
        "| metric | median | goal |",
        "|---|---|---|",
        f"| ours: wall time, model load → adapter written | {m['ours_wall_s']:.1f} s | |",
        f"| held-out KL per token: base / ours (shared set, fp32) | {m['kl_base']:.4f} / {m['ours_kl']:.4f} | |",
        f"| reference: time to ours' KL (reached in {s['reached']}/{n} runs) | {m['reference_s']:.1f} s | |",
        f"| of which load / sampling / training (teacher recompute) | {m['reference_load_s']:.1f} / "
        f"{m['reference_sampling_s']:.1f} / {m['reference_training_s']:.1f} ({m['reference_teacher_s']:.1f}) s | |",
        f"| reference steps to ours' KL / ours' steps | {m['reference_steps']:.0f} / {m['ours_train_steps']:.0f} | |",
        f"| speed-up, reference time ÷ ours | {speedup} | ≥ {GOAL_SPEEDUP:.0f}× ({met}) |",
        "",
        "Per run:",
        "",
        "| seed | ours s | ours KL | base KL | reference | ref s | ref load / sampling / training s "
        "| ref steps | ours steps | ref best KL | speed-up |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in s["runs"]:
        o, ref = r["ours"], r["reference"]
        lines.append(
            f"| {r['seed']} | {o['wall_s']:.1f} | {o['kl']:.4f} | {r['kl_base']:.4f} | "
            f"{'reached' if ref['reached'] else 'did not reach'} | {ref['seconds']:.1f} | "
            f"{ref['load_s']:.1f} / {ref['sampling_s']:.1f} / {ref['training_s']:.1f} | {ref['steps']} | "
            f"{o['train_steps']} | {ref['best_kl']:.4f} | {r['speedup']:.2f}× |"
        )
    lines += [
        "",
        "Ours' clock includes its own held-out and locality evaluation; the reference's excludes "
        "its held-out checks. The reference trains on num_queries × trajectories_per_query "
        "single-turn trajectories; ours adds its multi-turn second turns.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
