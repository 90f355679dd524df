"""Bake budget: FLOPs per unit of fidelity for the default persona bake's knobs.

    .venv/bin/python -m benchmarks.bench_bake_budget

One in-process bake per configuration (the pirate persona, seed 0), each with the same query
pool; reports held-out fidelity, wall time and its phases, training FLOPs (baking.cost), and the
bake's own estimate next to the measured time. The first row is the previous default (40-token
continuations, 4 epochs of batch 16); the new default is 24 tokens, 2 epochs of batch 8 (the
same number of optimiser steps). Writes benchmarks/results/bake_budget[_avx2].{json,md}.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from benchmarks.bench_persona_bake import PIRATE
from benchmarks.common import class_suffix, header, header_lines, write

CONFIGS = {
    "previous default: 40 tok, 4 ep × batch 16": {"max_new_tokens": 40, "epochs": 4, "batch_size": 16},
    "40 tok, 2 ep × batch 8": {"max_new_tokens": 40},
    "new default: 24 tok, 2 ep × batch 8": {},
    "16 tok, 2 ep × batch 8": {"max_new_tokens": 16},
    "24 tok, 1 ep × batch 4": {"epochs": 1, "batch_size": 4},
    "24 tok, 2 ep × batch 8, lr 1e-2": {"lr": 1e-2},
    "24 tok, 2 ep × batch 8, LoRA+ ×4": {"lora_plus_ratio": 4},
}


def main() -> None:
    from baking import BakeConfig, PromptItem, bake

    parser = argparse.ArgumentParser()
    parser.add_argument("--only", nargs="*", help="run only configs whose name contains one of these")
    parser.add_argument("--workdir", type=Path, default=Path("runs/bench_bake_budget"))
    args = parser.parse_args()
    rows = []
    for name, overrides in CONFIGS.items():
        if args.only and not any(o in name for o in args.only):
            continue
        t = time.perf_counter()
        version = bake([PromptItem(kind="persona", text=PIRATE)], args.workdir / "adapter",
                       BakeConfig(**overrides), overwrite=True, progress=False)
        m = version.metrics
        rows.append({"config": name, "overrides": overrides, "wall_s": time.perf_counter() - t,
                     **{k: m[k] for k in ("fidelity", "locality_kl", "sampling_s", "training_s", "eval_s",
                                          "load_s", "train_steps", "train_flops", "peak_share", "estimate_s",
                                          "estimate_phases_s", "dtype", "peak_flops")}})
        print(json.dumps(rows[-1]), flush=True)
    summary = header("bench_bake_budget") | {"rows": rows}
    name = "bake_budget" + class_suffix(summary["isa"])
    print(write(name, summary, render(summary)).read_text())


def render(s: dict) -> str:
    lines = [f"# Bake budget: fidelity per FLOP (class: {s['isa']})", "", *header_lines(s),
             "The pirate persona, seed 0, one in-process bake per row (wall: bake() call to adapter "
             "written). Training TFLOP counts the FLOPs actually run (baking.cost).", "",
             "| config | fidelity | wall s | sampling / training / eval s | steps | training TFLOP | "
             "peak share | estimate s |", "|---|---|---|---|---|---|---|---|"]
    for r in s["rows"]:
        lines.append(f"| {r['config']} | {r['fidelity']:.3f} | {r['wall_s']:.1f} | {r['sampling_s']:.1f} / "
                     f"{r['training_s']:.1f} / {r['eval_s']:.1f} | {r['train_steps']} | "
                     f"{r['train_flops'] / 1e12:.2f} | {r['peak_share']:.2f} | {r['estimate_s']:.0f} |")
    if s["rows"]:
        lines += ["", f"dtype {s['rows'][0]['dtype']}, probe {s['rows'][0]['peak_flops'] / 1e9:.0f} GFLOP/s."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
