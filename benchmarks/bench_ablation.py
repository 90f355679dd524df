"""What each part of a news bake buys: coverage, the locality term and replay, against cost.

    .venv/bin/python -m benchmarks.bench_ablation                      # every row
    .venv/bin/python -m benchmarks.bench_ablation --rows shipped no-replay

Each row runs ``bench_news`` (the product path: a worker per bake, the runtime's replay, gate
off so the chain is complete) on the same rows of the dev data, a split disjoint from the
headline run's (``--offset``: the headline takes the first 90 shuffled rows), with one part
changed. A row's raw result is kept in ``--workdir``/<row>.json, so rows can be run one at a
time and the table is rebuilt from those present. The multi-turn part is a persona matter and
is measured by ``bench_stability`` (``--bake '{"num_conversations": 0}'``), not here.

Reported per row: baked closed-book accuracy after the last bake (and as a share of the
in-context score), locality (baked minus base on never-baked controls, in points), retention
(batch 1 after the last bake over batch 1 right after its own) and bake seconds per item. The
``per-fact`` rows are the cost curve: accuracy against what a user pays per item.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from benchmarks.bench_news import DATA, run
from benchmarks.common import RESULTS, header, header_lines, write

ROWS: dict[str, tuple[str, dict, dict]] = {
    # label: (what changes, BakeConfig overrides, RuntimeConfig overrides)
    "shipped": ("the shipped defaults", {}, {}),
    "per-fact-4": ("coverage: 4 inputs per fact (shipped 16)", {"queries_per_fact": 4}, {}),
    "per-fact-8": ("coverage: 8 inputs per fact", {"queries_per_fact": 8}, {}),
    "both-ways": ("coverage: event → name too (reverse, wh, paraphrase; shipped: reverse)",
                  {"coverage_directions": ["reverse", "wh", "paraphrase"]}, {}),
    "all-directions": ("coverage: all six directions (shipped: reverse)",
                       {"coverage_directions": ["wh", "reverse", "cloze", "quiz", "paraphrase", "continuation"]}, {}),
    "no-locality": ("no locality term (locality_per_item 0)", {"locality_per_item": 0}, {}),
    "no-replay": ("no replay of earlier items (replay_per_fact 0)", {"replay_per_fact": 0}, {}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", nargs="*", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--items", type=int, default=16)
    parser.add_argument("--batches", type=int, default=2)
    parser.add_argument("--controls", type=int, default=16)
    parser.add_argument("--offset", type=int, default=90)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--workdir", type=Path, default=Path("runs/bench_ablation"))
    args = parser.parse_args()

    args.workdir.mkdir(parents=True, exist_ok=True)
    for label in args.rows:
        _, bake, runtime = ROWS[label]
        news = argparse.Namespace(data=args.data, items=args.items, batches=args.batches, controls=args.controls,
                                  seed=args.seed, offset=args.offset, device=args.device, bake=bake, runtime=runtime,
                                  min_fidelity=-1e9, workdir=args.workdir / label, rescore=False, quick=False)
        result = run(news)
        (args.workdir / f"{label}.json").write_text(json.dumps(result))
        print(f"{label}: {summarise(result)}", flush=True)

    done = {label: json.loads((args.workdir / f"{label}.json").read_text())
            for label in ROWS if (args.workdir / f"{label}.json").is_file()}
    summary = header("bench_ablation") | {"rows": {k: summarise(v) for k, v in done.items()},
                                          "items": args.items, "batches": args.batches, "controls": args.controls,
                                          "offset": args.offset}
    plot(summary, RESULTS / "ablation.png")
    print(write("ablation", summary, render(summary)).read_text())


def summarise(result: dict) -> dict:
    t = result["tables"]
    f = t["final"]
    fidelities = [b["metrics"]["fidelity"] for b in result["bakes"] if b["metrics"].get("fidelity") is not None]
    recalls = [b["metrics"]["fact_recall"] for b in result["bakes"] if b["metrics"].get("fact_recall") is not None]
    return {"baked": f["baked"]["items"], "prompted": f["prompted"]["items"], "base": f["base"]["items"],
            "baked_over_prompted": t["baked_over_prompted"],
            "locality_points": 100 * (f["baked"]["controls"] - f["base"]["controls"]),
            "retention": t["first_batch_retention"], "bake_s_per_item": t.get("bake_s_per_item"),
            "fidelity_median": statistics.median(fidelities) if fidelities else None,
            "fact_recall_median": statistics.median(recalls) if recalls else None,
            "fidelities": fidelities, "own_bake": t["own_bake"]}


def render(s: dict) -> str:
    cell = lambda x, fmt="{:.3f}": "–" if x is None else fmt.format(x)  # noqa: E731
    lines = ["# Ablation: what each part of a news bake buys", "", *header_lines(s),
             f"{s['items']} RealTimeQA items in {s['batches']} bakes, {s['controls']} never-baked controls, rows "
             f"{s['offset']}+ of the shuffled dev data (disjoint from the headline run). Multiple-choice "
             "log-likelihood over 4 choices (chance 0.25), after the last bake. Each score is over "
             f"{s['items']} questions: one question is {100 / s['items']:.1f} points.", "",
             "| row | what changes | baked | × in-context | locality (points vs base) | batch 1 retained | "
             "KL fidelity (median) | fact recall (median) | bake s / item |", "|---|---|---|---|---|---|---|---|---|"]
    for label, r in s["rows"].items():
        lines.append(f"| {label} | {ROWS[label][0]} | {cell(r['baked'])} | {cell(r['baked_over_prompted'], '{:.2f}')} | "
                     f"{cell(r['locality_points'], '{:+.1f}')} | {cell(r['retention'], '{:.2f}')} | "
                     f"{cell(r['fidelity_median'])} | {cell(r.get('fact_recall_median'))} | "
                     f"{cell(r['bake_s_per_item'], '{:.1f}')} |")
    any_row = next(iter(s["rows"].values()), None)
    if any_row:
        lines += ["", f"In context (prompted) {any_row['prompted']:.3f}, base {any_row['base']:.3f} (the same rows "
                  "in every row).", ""]
    lines += ["![ablation](ablation.png)", ""]
    return "\n".join(lines)


def plot(s: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for label, r in s["rows"].items():
        if r["bake_s_per_item"] is None:
            continue
        ax.scatter(r["bake_s_per_item"], r["baked"], color="C0" if label.startswith(("per-fact", "shipped")) else "C1")
        ax.annotate(label, (r["bake_s_per_item"], r["baked"]), fontsize=8, xytext=(4, 4), textcoords="offset points")
    curve = sorted((r["bake_s_per_item"], r["baked"]) for k, r in s["rows"].items()
                   if k.startswith(("per-fact", "shipped")) and r["bake_s_per_item"] is not None)
    if curve:
        ax.plot(*zip(*curve), color="C0", alpha=0.5, label="inputs per fact: 4 / 8 / 16 (shipped)")
    first = next(iter(s["rows"].values()), None)
    if first:
        ax.axhline(first["prompted"], color="grey", linestyle="--", label="in context")
        ax.axhline(first["base"], color="grey", linestyle=":", label="base")
    ax.set_xlabel("bake seconds per item")
    ax.set_ylabel("baked closed-book accuracy")
    ax.set_title("Accuracy against bake cost")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
