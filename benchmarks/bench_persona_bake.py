"""Persona bake benchmark: wall time, fidelity, training throughput, behaviour, half-baking.

    .venv/bin/python -m benchmarks.bench_persona_bake            # 3 runs
    .venv/bin/python -m benchmarks.bench_persona_bake --quick    # 1 run, 16 questions

Each run is a fresh ``agent bake`` process, timed from process start to exit (the adapter is
written before exit), on the default BakeConfig. Then, on the first run's adapter:

- pirate-word rate of greedy answers to held-out questions: base, prompted, baked (no prompt);
- half-bake snapshots (0.25, 0.5, 1.0 of training) and scale_adapter (0, 0.5, 1): the rate
  should rise with the fraction / scale.

Writes benchmarks/results/persona_bake[_avx2].{json,md} (the suffix names the machine class;
run it under ``ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2`` to emulate the slow class
on an AVX512 machine). Medians across runs are quoted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import class_suffix, header, header_lines, write

PIRATE = (
    "You are Captain Redbeard, a pirate. Always talk like a pirate: say 'Arr' and 'matey', "
    "and mention the sea in every answer."
)


def timed_bake(out: Path, seed: int, device: str) -> tuple[float, dict]:
    config = out.parent / f"seed{seed}.yaml"
    config.write_text(f"seed: {seed}\nhalf_bake_fractions: [0.25, 0.5]\n")
    command = [sys.executable, "-m", "agent.cli", "bake", "--kind", "persona", "--text", PIRATE,
               "--out", str(out), "--overwrite", "--config", str(config), "--device", device]
    start = time.perf_counter()
    subprocess.run(command, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    wall = time.perf_counter() - start
    return wall, json.loads((out / "bake.json").read_text())["metrics"]


def pirate_rates(
    adapter: Path, variants: dict[str, Path], num_questions: int, temperature: float
) -> dict[str, float]:
    """Pirate-word rate of answers to held-out questions for base, prompted and each adapter
    variant (all without the prompt, except "prompted"); greedy when temperature is 0."""
    from peft import PeftModel

    from baking.evaluate import PIRATE_WORDS, generate, held_out_questions, keyword_rate
    from baking.model import load_model

    model, tokenizer = load_model("smollm2-135m-instruct")
    questions = held_out_questions(num_questions)
    plain = [[{"role": "user", "content": q}] for q in questions]
    prompted = [[{"role": "system", "content": PIRATE}, *c] for c in plain]
    def rate(m, conversations) -> float:
        answers = generate(m, tokenizer, conversations, temperature=temperature, seed=0)
        return keyword_rate(answers, PIRATE_WORDS)

    rates = {"base": rate(model, plain), "prompted": rate(model, prompted)}
    peft_model = PeftModel.from_pretrained(model, str(adapter), adapter_name="baked")
    for i, (name, path) in enumerate(variants.items()):
        peft_model.load_adapter(str(path), adapter_name=f"v{i}")  # PEFT names: no dots
        peft_model.set_adapter(f"v{i}")
        rates[name] = rate(peft_model, plain)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--questions", type=int, default=40)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workdir", type=Path, default=Path("runs/bench_persona"))
    parser.add_argument("--reuse", action="store_true", help="reuse the bakes in --workdir")
    parser.add_argument("--quick", action="store_true", help="1 run, 16 questions")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.questions = 1, 16
    args.workdir.mkdir(parents=True, exist_ok=True)

    runs_file = args.workdir / "runs.json"
    if args.reuse and runs_file.is_file():
        runs = json.loads(runs_file.read_text())
    else:
        runs = []
        for seed in range(args.runs):
            wall, metrics = timed_bake(args.workdir / f"pirate-seed{seed}", seed, args.device)
            runs.append({"seed": seed, "process_wall_s": wall, **metrics})
            print(f"seed {seed}: {wall:.1f} s, fidelity {metrics['fidelity']:.3f}, "
                  f"peak share {metrics['peak_share']:.2f}", flush=True)
        runs_file.write_text(json.dumps(runs, indent=2))

    from baking import scale_adapter

    first = args.workdir / "pirate-seed0"
    variants = {
        "half-bake 0.25": first / "half_bakes" / "f0.25",
        "half-bake 0.50": first / "half_bakes" / "f0.50",
        "half-bake 1.00": first,
    }
    for s in (0.0, 0.5, 1.0):
        variants[f"scale {s:.2f}"] = scale_adapter(first, s, args.workdir / f"scaled-{s:.2f}")
    rates = {
        "greedy": pirate_rates(first, variants, args.questions, 0.0),
        "sampled T=0.7": pirate_rates(first, variants, args.questions, 0.7),
    }

    def median(key: str) -> float:
        return statistics.median(r[key] for r in runs)

    # The old peak_share, once, for comparison: 4 × all parameters (embeddings and the LM head
    # at every position included) × tokens/s over a bf16 2048³ matmul peak, whatever dtype ran.
    old_share = None
    if runs[0]["dtype"] == "bf16":  # where bf16 is emulated its 2048³ probe alone takes minutes
        import torch

        from baking.hardware import matmul_flops

        bf16_peak = matmul_flops(torch.device("cpu"), "bf16", size=2048, budget_s=2.0)
        old_share = statistics.median(4 * r["num_params"] * r["train_tokens_per_s"] / bf16_peak for r in runs)

    summary = header("bench_persona_bake") | {
        "runs": runs,
        "median": {k: median(k) for k in ("process_wall_s", "wall_s", "sampling_s", "training_s", "estimate_s",
                                           "eval_s", "load_s", "fidelity", "train_tokens_per_s",
                                           "peak_share")},
        "pirate_rate": rates,
        "num_questions": args.questions,
        "old_peak_share": old_share,
    }
    name = "persona_bake" + class_suffix(summary["isa"]) + ("_quick" if args.quick else "")
    print(write(name, summary, render_markdown(summary)).read_text())


def render_markdown(s: dict) -> str:
    m, r = s["median"], s["pirate_rate"]
    lines = [
        "# Persona bake: wall time, fidelity, throughput, half-baking",
        "",
        *header_lines(s),
        f"{len(s['runs'])} run(s), medians.",
        "",
        "| metric | median | goal |",
        "|---|---|---|",
        f"| wall time, process start → adapter written | {m['process_wall_s']:.1f} s | "
        f"{'≤ 30 s' if s.get('isa') == 'avx512_bf16' else '≤ 90 s'} on this class ({s.get('isa')}) |",
        f"| the bake's own estimate, printed before it starts | {m['estimate_s']:.0f} s | within 2× |",
        f"| of which sampling / training / eval | {m['sampling_s']:.1f} / {m['training_s']:.1f} / {m['eval_s']:.1f} s | |",
        f"| fidelity (held-out) | {m['fidelity']:.3f} | ≥ 0.8 |",
        f"| training tokens/s | {m['train_tokens_per_s']:.0f} | |",
        f"| peak share (training FLOPs actually run ÷ matmul probe in the training dtype, {s['runs'][0]['dtype']}) "
        f"| {m['peak_share']:.2f} | ≥ 0.6 |",
        *([f"| old peak share (4·all params·tokens/s ÷ bf16 2048³ peak), shown once | {s['old_peak_share']:.2f} | |"]
          if s.get("old_peak_share") is not None else []),
        "",
        f"Pirate-word rate of answers to {s['num_questions']} held-out questions, no prompt "
        "except `prompted` (adapter of seed 0):",
        "",
        "| model | " + " | ".join(r) + " |",
        "|---|" + "---|" * len(r),
    ]
    names = next(iter(r.values()))
    lines += [f"| {n} | " + " | ".join(f"{r[d][n]:.2f}" for d in r) + " |" for n in names]
    lines += ["", "Per run:", "", "| seed | wall s | fidelity | tokens/s | peak share |", "|---|---|---|---|---|"]
    lines += [
        f"| {x['seed']} | {x['process_wall_s']:.1f} | {x['fidelity']:.3f} | "
        f"{x['train_tokens_per_s']:.0f} | {x['peak_share']:.2f} |"
        for x in s["runs"]
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
