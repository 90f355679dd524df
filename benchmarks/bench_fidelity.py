"""Fidelity 1 − KL(p_prompted‖p_baked)/KL(p_prompted‖p_base) on held-out queries: across prompt
kinds and lengths, and against LoRA rank and epochs (trajectories: bench_scaling).

    .venv/bin/python -m benchmarks.bench_fidelity            # 6 prompts + 2 sweeps, 2 seeds
    .venv/bin/python -m benchmarks.bench_fidelity --quick    # 3 prompts + 1 point per sweep, 1 seed

Every point is one bake with the default BakeConfig except the swept field; the sweeps use the
short pirate persona. The held-out queries are the baker's own disjoint split; fidelity and
KL come from its bake.json.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from benchmarks.common import RESULTS, header, header_lines, write

PROMPTS = {
    "persona, short": ("persona", ["You are Captain Redbeard, a pirate. Always talk like a pirate: say 'Arr' and "
                                   "'matey', and mention the sea in every answer."]),
    "persona, long": ("persona", [
        "You are Professor Elowen Marsh, a retired marine biologist who spent forty years studying octopuses "
        "on the coast of Cornwall. You are warm, patient and a little absent-minded. You relate every topic "
        "to the ocean or to some creature that lives in it, you use gentle British expressions such as "
        "'my dear' and 'rather', you like to end with a small question back to the person, and you never use "
        "slang. When you do not know something you say so plainly and suggest where to look it up."]),
    "instruction, short": ("instruction", ["Always answer in French, whatever language the user writes in."]),
    "instruction, long": ("instruction", [
        "Follow these rules in every answer: answer in at most three sentences; begin with a one-word summary "
        "followed by a colon; never use the word 'very'; give a number or a date whenever the question allows "
        "one; end every answer with the word 'Over.'"]),
    "news, 1 item": ("news", ["Zentrix Robotics named Mara Okafor as its new chief executive officer on Monday."]),
    "news, 5 items": ("news", [
        "Zentrix Robotics named Mara Okafor as its new chief executive officer on Monday.",
        "The city of Luneborg opened the Halden Bridge, the longest suspension bridge in the region, on Friday.",
        "Brightwater Labs said its fusion test reactor Kestrel-2 ran for 41 minutes, a company record.",
        "Tessaly Foods recalled its Morning Oat bars after finding traces of peanuts in one batch.",
        "The Corvid Aerospace probe Wren reached orbit around the asteroid Pallas-7 on Tuesday."]),
}
# Fidelity against the number of training queries (trajectories) is in bench_scaling.
SWEEPS = {"lora_rank": [2, 8, 32], "epochs": [1, 2, 4, 6]}
QUICK_PROMPTS = ("persona, short", "instruction, short", "news, 1 item")
QUICK_SWEEPS = {"lora_rank": [2, 8], "epochs": [1, 4]}


def one_bake(out: Path, kind: str, texts: list[str], overrides: dict, device: str) -> dict:
    from baking import BakeConfig, PromptItem, bake

    # min_steps 1: the sweeps vary epochs and sizes, which the floor of 32 steps would flatten.
    config = BakeConfig(**{"min_steps": 1, **overrides, "device": device})
    version = bake([PromptItem(kind=kind, text=t) for t in texts], out, config, overwrite=True, progress=False)
    m = version.metrics
    return {k: m[k] for k in ("fidelity", "kl_base", "kl_baked", "locality_kl", "locality_kl_parent", "wall_s",
                              "num_trajectories")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workdir", type=Path, default=Path("runs/bench_fidelity"))
    args = parser.parse_args()
    prompts, sweeps = (QUICK_PROMPTS, QUICK_SWEEPS) if args.quick else (tuple(PROMPTS), SWEEPS)
    if args.quick:
        args.seeds = 1

    summary = header("bench_fidelity") | {"seeds": args.seeds, "kinds": {}, "sweeps": {}}
    done: dict[tuple, dict] = {}  # the default point is shared by the sweeps and the short persona

    def point(label: str, kind: str, texts: list[str], overrides: dict, seed: int) -> dict:
        key = (kind, tuple(texts), tuple(sorted(overrides.items())), seed)
        if key not in done:
            slug = "".join(c if c.isalnum() else "-" for c in f"{label}-{overrides}-s{seed}")
            done[key] = one_bake(args.workdir / slug, kind, texts, {**overrides, "seed": seed}, args.device)
            print(f"{label} {overrides} seed {seed}: fidelity {done[key]['fidelity']:.3f}, "
                  f"{done[key]['wall_s']:.0f} s", flush=True)
        return done[key]

    for seed in range(args.seeds):
        for label in prompts:
            kind, texts = PROMPTS[label]
            summary["kinds"].setdefault(label, []).append(point(label, kind, texts, {}, seed))
        kind, texts = PROMPTS["persona, short"]
        for field, values in sweeps.items():
            for v in values:
                overrides = {} if v == default(field) else {field: v}
                summary["sweeps"].setdefault(field, {}).setdefault(str(v), []).append(
                    point("persona, short", kind, texts, overrides, seed))
    name = "fidelity" + ("_quick" if args.quick else "")
    plot(summary, RESULTS / f"{name}.png")
    print(write(name, summary, render(summary, name)).read_text())


def default(field: str):
    from baking import BakeConfig

    return BakeConfig.model_fields[field].default


def med(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def render(s: dict, name: str) -> str:
    lines = ["# Fidelity across prompts and bake settings", "", *header_lines(s),
             "Fidelity = 1 − KL(prompted teacher ‖ baked) / KL(prompted teacher ‖ base), full vocabulary, per token, "
             f"on the bake's held-out queries; locality KL on unrelated control queries (before → after). Medians over "
             f"{s['seeds']} seed(s).", "",
             "| prompt | words | fidelity | KL base → baked | locality KL parent → baked | bake wall s |", "|---|---|---|---|---|---|"]
    for label, runs in s["kinds"].items():
        words = sum(len(t.split()) for t in PROMPTS[label][1])
        lines.append(f"| {label} | {words} | {med(runs, 'fidelity'):.3f} | {med(runs, 'kl_base'):.3f} → "
                     f"{med(runs, 'kl_baked'):.3f} | {med(runs, 'locality_kl_parent'):.3f} → "
                     f"{med(runs, 'locality_kl'):.3f} | {med(runs, 'wall_s'):.0f} |")
    for field, points in s["sweeps"].items():
        lines += ["", f"Pirate persona, {field} (default {default(field)}):", "",
                  f"| {field} | trajectories | fidelity | bake wall s |", "|---|---|---|---|"]
        lines += [f"| {v} | {med(r, 'num_trajectories'):.0f} | {med(r, 'fidelity'):.3f} | {med(r, 'wall_s'):.0f} |"
                  for v, r in points.items()]
    lines += ["", f"![fidelity]({name}.png)", ""]
    return "\n".join(lines)


def plot(s: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 1 + len(s["sweeps"])
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 4.2))
    labels = list(s["kinds"])
    values = [med(s["kinds"][k], "fidelity") for k in labels]
    bars = axes[0].barh(labels, values, color="tab:blue")
    axes[0].bar_label(bars, fmt="%.2f", fontsize=8)
    axes[0].set_xlim(min(0, min(values)), 1)
    axes[0].set_xlabel("fidelity")
    axes[0].set_title("By prompt kind and length")
    for ax, (field, points) in zip(axes[1:], s["sweeps"].items()):
        xs = [float(v) for v in points]
        ys = [med(r, "fidelity") for r in points.values()]
        ax.plot(xs, ys, marker="o", label="fidelity")
        for x, y in zip(xs, ys):
            ax.annotate(f"{y:.2f}", (x, y), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
        ax.set_xscale("log", base=2)
        ax.set_xlabel(field.replace("_", " ") + " (log scale)")
        ax.set_ylabel("fidelity")
        ax.set_ylim(0, 1)  # the same scale as the left panel: a 0.01 step must not look like a cliff
        ax.set_title(f"Pirate persona vs {field.replace('_', ' ')}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
