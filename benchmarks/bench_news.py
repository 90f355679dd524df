"""News knowledge: real dated news QA baked in consecutive batches, asked closed-book.

    .venv/bin/python -m benchmarks.bench_news            # 120 items, 6 bakes of 20
    .venv/bin/python -m benchmarks.bench_news --quick    # 24 items, 6 bakes of 4

The evidence sentences of RealTimeQA rows (``--data``, read by path; the project never depends
on it) are fed to one agent's memory and baked the way the product bakes them: a baker worker
process per batch (``agent.runtime.worker``, the runtime's config, gate and replay), each bake on top of
the live adapter. After every bake, each question is scored by multiple-choice log-likelihood
over its four choices (chance 25%) under:

- ``base``: the question alone; ``prompted``: the item's evidence in context, rendered as the
  baker renders news; ``baked``: the live adapter, question alone; ``baked+prompted``: both.

Reported: reliability (the baked questions), generalization (a paraphrase of each question that
the base model wrote itself; only the valid ones), locality (control rows never baked: baked vs
base) and retention (the forgetting matrix: each batch's score after each bake).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
from pathlib import Path

from benchmarks.common import RESULTS, header, header_lines, write

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "realtimeqa_dev_2024h2.jsonl"
AGENT = "news"
CONDITIONS = ("base", "prompted", "baked", "baked+prompted")
METRICS = ("fidelity", "kl_base", "kl_baked", "fact_recall", "fact_gain_teacher", "fact_gain_baked", "num_facts",
           "locality_kl", "locality_kl_parent", "wall_s", "num_trajectories", "train_steps")


def load_rows(path: Path, n_items: int, n_controls: int, seed: int, offset: int = 0) -> tuple[list[dict], list[dict]]:
    """Items and controls from the shuffled rows, after the first ``offset`` (a disjoint split:
    the headline run takes the first 90 with seed 0, ablations start after them)."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    random.Random(seed).shuffle(rows)
    rows = rows[offset:]
    if len(rows) < n_items + n_controls:
        raise SystemExit(f"{path} has {len(rows)} rows after --offset {offset}; need {n_items + n_controls}")
    return rows[:n_items], rows[n_items : n_items + n_controls]


PARAPHRASE_SHOTS = (
    ("What is the capital city of France?", "Which city is France's capital?"),
    ("Who won the 2018 FIFA World Cup?", "Which country was the winner of the 2018 football World Cup?"),
    ("How many moons does Mars have?", "What is the number of moons that orbit Mars?"),
)


def paraphrase(engine, questions: list[str]) -> list[str | None]:
    """A rewording of each question by the base model (greedy, three worked examples first), or
    None when it wrote no usable question: no sentence ending in '?', the same text, or far off
    in length."""
    from baking.evaluate import generate

    def ask(q: str) -> list[dict]:
        turns = []
        for before, after in (*PARAPHRASE_SHOTS, (q, None)):
            turns.append({"role": "user", "content": f"Rewrite this question in different words.\nQuestion: {before}"})
            if after:
                turns.append({"role": "assistant", "content": after})
        return turns

    answers = generate(engine.model, engine.tokenizer, [ask(q) for q in questions], max_new_tokens=48)
    out = []
    for q, a in zip(questions, answers):
        found = re.search(r"[^?\n]*\?", a)
        line = found.group(0).strip().strip('"') if found else ""
        ok = bool(line) and line.casefold() != q.casefold() and 0.5 <= len(line) / len(q) <= 2.0
        out.append(line if ok else None)
    return out


def score_rows(engine, rows: list[dict], questions: list[str | None], condition: str, adapter: str | None) -> list[float | None]:
    """1/0 per row (None where the question is None): the right choice has the top log-likelihood."""
    from agent.scenario.judges import mc_loglik
    from baking.config import PromptItem
    from baking.render import Query, teacher_messages

    scores: list[float | None] = []
    for row, question in zip(rows, questions):
        if question is None:
            scores.append(None)
            continue
        items = [PromptItem(kind="news", text=row["evidence"])] if "prompted" in condition else []
        messages = teacher_messages(items, Query.single(question, tuple(range(len(items)))))
        logliks = engine.score(messages, adapter if condition.startswith("baked") else None, row["choices"])
        scores.append(mc_loglik(logliks, row["answer_idx"]))
    return scores


def mean(xs) -> float | None:
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="24 items in 6 batches, 12 controls")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--items", type=int, default=120)
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--controls", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--offset", type=int, default=0, help="skip this many shuffled rows (a disjoint split)")
    parser.add_argument("--device", default="cpu", help="the baker's device (cpu, cuda, cuda:N)")
    parser.add_argument("--bake", type=json.loads, default={},
                        help="BakeConfig overrides as JSON (default: none, the shipped per-fact budget)")
    parser.add_argument("--runtime", type=json.loads, default={},
                        help="RuntimeConfig overrides as JSON, e.g. '{\"max_items_per_bake\": 5}'")
    parser.add_argument("--min-fidelity", type=float, default=-1e9,
                        help="the gate (default: open, so every bake goes live and retention is measured on "
                             "a complete chain; the report shows the shipped gate's verdict on each bake)")
    parser.add_argument("--workdir", type=Path, default=Path("runs/bench_news"))
    parser.add_argument("--rescore", action="store_true",
                        help="score the adapters a previous run left in --workdir again, without baking")
    args = parser.parse_args()
    if args.quick:
        args.items, args.controls, args.bake = 24, 12, {"queries_per_fact": 8}
    summary = run(args)
    path = write("news" + ("_quick" if args.quick else ""), summary, render(summary, args.quick))
    plot(summary, RESULTS / f"news{'_quick' if args.quick else ''}.png")
    print(path.read_text())


def run(args) -> dict:
    """Bake the items batch after batch and score every condition; the raw summary."""
    import shutil

    import torch

    from agent.runtime.config import GateConfig, RuntimeConfig
    from baking.hardware import choose_precision
    from agent.serving.hf import TransformersEngine
    from agent.runtime.worker import spawn_worker
    from baking.config import BakeConfig
    from memory.store import MemoryStore

    summary = header("bench_news") | {"args": {k: str(v) for k, v in vars(args).items()}}
    baked_rows, control_rows = load_rows(args.data, args.items, args.controls, args.seed, args.offset)
    size = -(-len(baked_rows) // args.batches)
    batches = [baked_rows[i : i + size] for i in range(0, len(baked_rows), size)]

    if not args.rescore:
        shutil.rmtree(args.workdir, ignore_errors=True)
    open_gate = args.min_fidelity <= -1e9  # the locality bound opens with it
    gate = GateConfig(min_fidelity=args.min_fidelity, **({"max_locality_kl": 1e9} if open_gate else {}))
    config = RuntimeConfig(**{"home": args.workdir, "worker_device": args.device, "gate": gate,
                              "bake": BakeConfig(**{"device": args.device, "seed": args.seed, **args.bake}),
                              **args.runtime})
    store = MemoryStore(config.db_path)
    store.create_agent(AGENT)
    versions = sorted(store.adapters(AGENT), key=lambda a: a.version) if args.rescore else []
    if args.rescore and len(versions) != len(batches):
        raise SystemExit(f"--rescore: {args.workdir} has {len(versions)} adapters for {len(batches)} batches")
    live_then = None
    engine = TransformersEngine(config.model)
    if args.device == "cpu" and choose_precision(torch.device("cpu")).bf16:
        engine.model.to(torch.bfloat16)  # scoring only ranks 4 choices; native bf16 is faster there

    originals = [r["question"] for r in baked_rows]
    paraphrases = paraphrase(engine, originals)
    summary["paraphrases_valid"] = sum(p is not None for p in paraphrases)
    summary["paraphrase_examples"] = [[q, p] for q, p in zip(originals, paraphrases) if p][:5]
    controls = [r["question"] for r in control_rows]

    # Base and prompted do not change across bakes: scored once.
    fixed = {c: {"items": score_rows(engine, baked_rows, originals, c, None),
                 "paraphrases": score_rows(engine, baked_rows, paraphrases, c, None),
                 "controls": score_rows(engine, control_rows, controls, c, None)}
             for c in ("base", "prompted")}
    print(f"base {mean(fixed['base']['items']):.3f}, prompted {mean(fixed['prompted']['items']):.3f}, "
          f"{summary['paraphrases_valid']}/{len(originals)} paraphrases", flush=True)

    bakes = []
    for k, batch in enumerate(batches):
        if args.rescore:  # the adapter live after bake k: its own, unless the gate refused it
            code, latest = None, versions[k]
            live_then = latest if latest.status != "rejected" else live_then
            record = live_then
        else:
            for row in batch:
                store.add(AGENT, row["evidence"], kind="news", source="benchmark")
            code = spawn_worker(config, AGENT).wait()
            latest = max(store.adapters(AGENT), key=lambda a: a.version) if store.adapters(AGENT) else None
            if latest is not None and latest.status == "candidate":  # what the serving runtime does after its swap
                store.promote(latest.id, latest.reason)
                latest = store.adapter(latest.id)
            record = store.live(AGENT)
        name = f"bake{k + 1}" if record is not None else None  # None: no adapter passed the gate yet
        if name is not None:
            engine.load_adapter(name, record.path)
        # baked+prompted (re-prompting) on the baked questions only: it costs a full pass.
        scored = {"baked": {"items": score_rows(engine, baked_rows, originals, "baked", name),
                            "paraphrases": score_rows(engine, baked_rows, paraphrases, "baked", name),
                            "controls": score_rows(engine, control_rows, controls, "baked", name)},
                  "baked+prompted": {"items": score_rows(engine, baked_rows, originals, "baked+prompted", name)}}
        bakes.append({"bake": k + 1, "worker_exit": code, "live": record.name if record else None,
                      "status": ("live" if latest.status == "retired" else latest.status) if latest else None, "reason": latest.reason if latest else None,
                      "metrics": {m: latest.metrics.get(m) for m in METRICS} if latest else {},
                      "scores": scored})
        print(f"bake {k + 1}: {bakes[-1]['status']} (live {name}), baked items "
              f"{mean(scored['baked']['items']):.3f}, controls {mean(scored['baked']['controls']):.3f}", flush=True)

    summary |= {"fixed": fixed, "bakes": bakes, "batch_sizes": [len(b) for b in batches]}
    summary["tables"] = tables(summary)
    return summary


def tables(s: dict) -> dict:
    """Reliability, generalization, locality and the forgetting matrix from the raw scores."""
    sizes = s["batch_sizes"]
    spans = [(sum(sizes[:j]), sum(sizes[: j + 1])) for j in range(len(sizes))]
    last = s["bakes"][-1]["scores"]
    final = {"base": s["fixed"]["base"], "prompted": s["fixed"]["prompted"], **last}
    summary = {c: {k: mean(v) for k, v in final[c].items()} for c in CONDITIONS}
    matrix = [[mean(b["scores"]["baked"]["items"][a:z]) for a, z in spans] for b in s["bakes"]]
    base_batches = [mean(s["fixed"]["base"]["items"][a:z]) for a, z in spans]
    own = [matrix[j][j] for j in range(len(spans))]
    first_retention = matrix[-1][0] / own[0] if own[0] else None
    walls = [b["metrics"].get("wall_s") / n for b, n in zip(s["bakes"], sizes) if b["metrics"].get("wall_s")]
    return {"final": summary, "forgetting": matrix, "base_per_batch": base_batches,
            "bake_s_per_item": statistics.median(walls) if walls else None,
            "own_bake": own, "first_batch_retention": first_retention,
            "baked_over_prompted": summary["baked"]["items"] / summary["prompted"]["items"]}


def shipped_gate(metrics: dict) -> str:
    """The verdict the product's default gate gives this bake (the benchmark itself runs with
    the gate open, so that the chain is complete)."""
    from agent.runtime.config import RuntimeConfig
    from agent.runtime.gate import gate_verdict

    if metrics.get("fidelity") is None:
        return "–"
    passed, reason = gate_verdict(metrics, RuntimeConfig(), ["news"])
    return ("passes" if passed else "refuses") + f": {reason}"


def render(s: dict, quick: bool) -> str:
    t = s["tables"]
    f = t["final"]
    n = len(s["batch_sizes"])
    passing = sum(shipped_gate(b["metrics"]).startswith("passes") for b in s["bakes"])
    lines = ["# News knowledge: RealTimeQA evidence baked in batches, asked closed-book", "",
             *header_lines(s),
             f"{sum(s['batch_sizes'])} items baked in {n} consecutive bakes of {s['batch_sizes'][0]}, "
             f"{len(s['fixed']['base']['controls'])} control rows never baked; multiple-choice "
             "log-likelihood over 4 choices (chance 0.25). Scores after the last bake.", "",
             "| condition | reliability (baked questions) | generalization (model-written paraphrases, "
             f"{s['paraphrases_valid']} valid) | locality (controls) |", "|---|---|---|---|"]
    cell = lambda x: "–" if x is None else f"{x:.3f}"  # noqa: E731 - baked+prompted: baked questions only
    lines += [f"| {c} | {cell(f[c].get('items'))} | {cell(f[c].get('paraphrases'))} | {cell(f[c].get('controls'))} |"
              for c in CONDITIONS]
    lines += ["", "| goal | measured | met |", "|---|---|---|",
              f"| baked closed-book ≥ 0.9 × prompted | {t['baked_over_prompted']:.2f} × "
              f"({f['baked']['items']:.3f} / {f['prompted']['items']:.3f}) | {'yes' if t['baked_over_prompted'] >= 0.9 else 'no'} |",
              f"| locality within 2 points of base | baked {f['baked']['controls']:.3f} vs base {f['base']['controls']:.3f} "
              f"({100 * (f['baked']['controls'] - f['base']['controls']):+.1f} points) | "
              f"{'yes' if abs(f['baked']['controls'] - f['base']['controls']) <= 0.02 else 'no'} |",
              f"| batch 1 retained after {n - 1} more bakes ≥ 0.9 × right after its bake | "
              + (f"{t['first_batch_retention']:.2f} × ({t['forgetting'][-1][0]:.3f} / {t['own_bake'][0]:.3f})"
                 if t["first_batch_retention"] is not None else "n/a (0 right after its bake)")
              + f" | {'yes' if (t['first_batch_retention'] or 0) >= 0.9 else 'no'} |",
              f"| every bake passes the shipped gate | {passing} of {n} | {'yes' if passing == n else 'no'} |",
              "", "Forgetting matrix: baked accuracy on each batch (columns) after each bake (rows); "
              "the base model's score per batch in the last row.", "",
              "| after bake | " + " | ".join(f"batch {j + 1}" for j in range(n))
              + " | KL fidelity (KL base → baked) | fact recall | shipped gate |",
              "|---|" + "---|" * (n + 3)]
    for b, row in zip(s["bakes"], t["forgetting"]):
        m = b["metrics"]
        fid = "–" if m.get("fidelity") is None else (
            f"{m['fidelity']:.3f}" + (f" ({m['kl_base']:.3f} → {m['kl_baked']:.3f})" if m.get("kl_base") is not None else ""))
        recall = "–" if m.get("fact_recall") is None else f"{m['fact_recall']:.3f}"
        lines.append(f"| {b['bake']} | " + " | ".join(f"{x:.2f}" for x in row) + f" | {fid} | {recall} | "
                     f"{shipped_gate(m)} |")
    lines.append("| base | " + " | ".join(f"{x:.2f}" for x in t["base_per_batch"]) + " | | | |")
    walls = [b["metrics"].get("wall_s") for b in s["bakes"] if b["metrics"].get("wall_s")]
    if walls:
        lines += ["", f"Bake wall time (baker, model load to adapter written): median {statistics.median(walls):.0f} s "
                  f"per batch, {t['bake_s_per_item']:.1f} s per item."]
    lines += ["", "Paraphrases the base model wrote (first ones):", ""]
    lines += [f"- {q} → {p}" for q, p in s["paraphrase_examples"]]
    lines += ["", f"![news](news{'_quick' if quick else ''}.png)", ""]
    return "\n".join(lines)


def plot(s: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = s["tables"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    sets = ("items", "paraphrases", "controls")
    width = 0.2
    for i, c in enumerate(CONDITIONS):
        measured = [(x, t["final"][c][k]) for x, k in enumerate(sets) if t["final"][c].get(k) is not None]
        bars = left.bar([x + i * width for x, _ in measured], [v for _, v in measured], width, label=c)
        left.bar_label(bars, fmt="%.2f", fontsize=7)  # baked+prompted: measured on the baked questions only
    left.axhline(0.25, color="grey", linestyle=":", label="chance")
    left.set_xticks([x + 1.5 * width for x in range(len(sets))], ["baked questions", "paraphrases", "controls (never baked)"])
    left.set_ylabel("multiple-choice accuracy")
    left.set_ylim(0, 1)
    left.set_title("After the last bake")
    left.legend(fontsize=8)
    matrix = t["forgetting"]
    image = right.imshow(matrix, vmin=0, vmax=1, cmap="viridis")
    for r, row in enumerate(matrix):
        for c, v in enumerate(row):
            right.text(c, r, f"{v:.2f}", ha="center", va="center", color="white" if v < 0.6 else "black", fontsize=8)
    right.set_xticks(range(len(matrix[0])), [f"batch {j + 1}" for j in range(len(matrix[0]))])
    right.set_yticks(range(len(matrix)), [f"after bake {b + 1}" for b in range(len(matrix))])
    right.set_title("Forgetting matrix: baked accuracy per batch")
    fig.colorbar(image, ax=right, label="accuracy")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
