"""Render a run's report: ``report.json`` -> ``report.md`` and its PNG plots.

``agent report RUN_DIR`` calls :func:`render` again, so a report can be re-rendered (or
rendered by a newer version) from the JSON alone. Every number in the Markdown comes from
``report.json``; nothing is computed from the model here.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from statistics import mean

CONDITION_ORDER = ("base", "prompted", "baked", "baked+prompted")
COLORS = {"base": "#7f7f7f", "prompted": "#1f77b4", "baked": "#d62728", "baked+prompted": "#2ca02c",
          "live": "#9467bd", "scale": "#d62728", "snapshot": "#ff7f0e"}


def _conditions(rows: list[dict]) -> list[str]:
    present = {r["condition"] for r in rows}
    return [c for c in CONDITION_ORDER if c in present]


def _points(rows: list[dict]) -> list[str]:
    """Evaluation points in the order they happened."""
    order: dict[str, int] = {}
    for r in rows:
        order.setdefault(r["point"], r["event"])
    return sorted(order, key=order.get)


def _fmt(x: float | None, digits: int = 2) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


# ------------------------------------------------------------------ summaries
def _set_name(row: dict) -> str:
    return "control" if row["control"] and not row["set"] else (row["set"] or "questions")


def ask_summary(rows: list[dict]) -> dict[str, dict[tuple[str, str], dict[str, dict[str, float | None]]]]:
    """agent -> (point, question set) -> condition -> {reliability, generalization, locality}."""
    out: dict = defaultdict(lambda: defaultdict(dict))
    groups: dict = defaultdict(list)
    for r in rows:
        groups[(r["agent"], r["point"], _set_name(r), r["condition"])].append(r)
    for (agent, point, set_name, condition), group in groups.items():
        def avg(pred):
            scores = [r["score"] for r in group if pred(r)]
            return mean(scores) if scores else None
        out[agent][(point, set_name)][condition] = {
            "reliability": avg(lambda r: not r["control"] and r["variant"] == "original"),
            "generalization": avg(lambda r: not r["control"] and r["variant"] == "paraphrase"),
            "locality": avg(lambda r: r["control"]),
        }
    return out


def forgetting_matrix(rows: list[dict], agent: str, condition: str = "baked") -> tuple[list[str], list[str], list[list[float | None]]]:
    """Rows: evaluation points; columns: question sets (not controls); cells: mean score."""
    mine = [r for r in rows if r["agent"] == agent and r["condition"] == condition and r["set"] and not r["control"]
            and r["variant"] == "original"]
    points = _points(mine)
    sets = list(dict.fromkeys(r["set"] for r in mine))
    cells = []
    for p in points:
        row = []
        for s in sets:
            scores = [r["score"] for r in mine if r["point"] == p and r["set"] == s]
            row.append(mean(scores) if scores else None)
        cells.append(row)
    return points, sets, cells


def probe_curves(rows: list[dict]) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """agent -> condition -> [(turn, mean score over the probe questions)]."""
    groups: dict = defaultdict(list)
    for r in rows:
        groups[(r["agent"], r["condition"], r["turn"])].append(r["score"])
    out: dict = defaultdict(lambda: defaultdict(list))
    for (agent, condition, turn), scores in sorted(groups.items(), key=lambda kv: kv[0][2]):
        out[agent][condition].append((turn, mean(scores)))
    return out


# ---------------------------------------------------------------------- plots
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path: Path) -> bool:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_probes(report: dict, path: Path) -> bool:
    curves = probe_curves(report["probes"])
    if not curves:
        return False
    plt = _plt()
    agents = list(curves)
    fig, axes = plt.subplots(1, len(agents), figsize=(6.5 * len(agents), 4.2), squeeze=False)
    for ax, agent in zip(axes[0], agents):
        for condition in [c for c in CONDITION_ORDER if c in curves[agent]]:
            turns, scores = zip(*curves[agent][condition])
            ax.plot(turns, scores, marker="o", label=condition, color=COLORS[condition])
        ax.set_title(f"Persona/instruction stability over the conversation: {agent}")
        if not any(c in curves[agent] for c in ("baked", "baked+prompted")):
            refused = [b for b in report.get("bakes", []) if b["agent"] == agent and b["status"] == "rejected"]
            why = "its bake was refused by the gate" if refused else "it has no live adapter"
            ax.text(0.5, 0.6, f"baked conditions not measured:\n{why}", transform=ax.transAxes,
                    ha="center", color="0.4")
        ax.set_xlabel("conversation turn (user messages so far)")
        ax.set_ylabel("judge score (mean over probe questions, 0–1)")
        ax.set_ylim(-0.05, 1.05)
        ax.grid(alpha=0.3)
        ax.legend(title="condition")
    return _save(plt, fig, path)


def plot_knowledge(report: dict, path: Path) -> bool:
    """One panel per agent and question set: accuracy at each evaluation point per condition."""
    rows = [r for r in report["asks"] if not r["control"] and r["variant"] == "original"]
    if not rows:
        return False
    plt = _plt()
    summary = ask_summary(rows)
    panels = list(dict.fromkeys((r["agent"], _set_name(r)) for r in rows))
    cols = min(len(panels), 3)
    nrows = (len(panels) + cols - 1) // cols
    width_each = max(5.5, 1.5 * len(_points(rows)) + 2.5)
    fig, axes = plt.subplots(nrows, cols, figsize=(width_each * cols, 4.4 * nrows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, (agent, set_name) in zip(axes.flat, panels):
        mine = [r for r in rows if r["agent"] == agent and _set_name(r) == set_name]
        points, conditions = _points(mine), _conditions(mine)
        width = 0.8 / max(len(conditions), 1)
        for i, condition in enumerate(conditions):
            values = [summary[agent][(p, set_name)].get(condition, {}).get("reliability") for p in points]
            xs = [j + (i - (len(conditions) - 1) / 2) * width for j in range(len(points))]
            bars = ax.bar(xs, [v or 0 for v in values], width, label=condition, color=COLORS[condition])
            ax.bar_label(bars, labels=["" if v is None else f"{v:.2f}" for v in values], fontsize=7, padding=1)
        ax.set_xticks(range(len(points)), points, rotation=15, ha="right")
        ax.set_title(f"{agent}: '{set_name}' questions, before/after bakes")
        ax.set_xlabel("evaluation point")
        ax.set_ylabel("score (fraction right / judge rate, 0–1)")
        ax.set_ylim(0, 1.05)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(title="condition", fontsize=8)
    fig.suptitle("Knowledge and behaviour by condition at each evaluation point")
    return _save(plt, fig, path)


def plot_bakes(report: dict, path: Path) -> bool:
    bakes = [b for b in report["bakes"] if b.get("started_s") is not None and b.get("wall_s")]
    if not bakes:
        return False
    plt = _plt()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 5.8), gridspec_kw={"height_ratios": [3, 2]})
    agents = list(dict.fromkeys(b["agent"] for b in bakes))
    for b in bakes:
        y = agents.index(b["agent"])
        color = "#2ca02c" if b["status"] in ("live", "retired") else "#d62728"
        top.barh(y, b["wall_s"], left=b["started_s"], height=0.5, color=color, alpha=0.8)
        top.text(b["started_s"] + b["wall_s"] / 2, y, f"{b['name'].rsplit('-', 1)[-1]}\n{b['wall_s']:.0f} s",
                 ha="center", va="center", fontsize=8)
    top.set_yticks(range(len(agents)), agents)
    top.set_xlabel("time since the run started (s)")
    top.set_title("Bake timeline (bar = baker wall time; green went live, red was rejected)")
    top.grid(axis="x", alpha=0.3)
    labels = [b["name"] for b in bakes]
    fidelity = [b["fidelity"] or 0 for b in bakes]
    bottom.bar(range(len(bakes)), fidelity, color=["#2ca02c" if b["status"] in ("live", "retired") else "#d62728"
                                                  for b in bakes], label="fidelity")
    recalls = [(i, b["fact_recall"]) for i, b in enumerate(bakes) if b.get("fact_recall") is not None]
    if recalls:  # what the gate reads for news and facts (agent.runtime.gate.gate_verdict)
        bottom.scatter(*zip(*recalls), marker="D", color="black", zorder=3, label="fact recall")
    gate = (report.get("gate") or {}).get("min_fidelity")
    if gate is not None:
        bottom.axhline(gate, linestyle="--", color="black", linewidth=1, label=f"gate: min {gate:g}")
    bottom.set_xticks(range(len(bakes)), labels, rotation=15, ha="right", fontsize=8)
    bottom.set_ylabel("share of the prompt's effect captured")
    bottom.set_xlabel("adapter version")
    bottom.set_ylim(min([0, *fidelity, *(r for _, r in recalls)]) - 0.05, max([1, *(r for _, r in recalls)]) + 0.05)
    bottom.set_title("Held-out fidelity (bars) and fact recall per bake")
    bottom.grid(axis="y", alpha=0.3)
    bottom.legend(loc="lower right")
    return _save(plt, fig, path)


def plot_scales(report: dict, path: Path) -> bool:
    rows = report["scales"]
    if not rows:
        return False
    plt = _plt()
    agents = list(dict.fromkeys(r["agent"] for r in rows))
    fig, axes = plt.subplots(1, len(agents), figsize=(6.5 * len(agents), 4.2), squeeze=False)
    for ax, agent in zip(axes[0], agents):
        mine = [r for r in rows if r["agent"] == agent]
        for kind, label in (("scale", "LoRA delta × s"), ("snapshot", "half-bake snapshot at fraction s")):
            points = sorted((r["value"], r["score"]) for r in mine if r["kind"] == kind)
            if points:
                ax.plot(*zip(*points), marker="o", label=label, color=COLORS[kind])
        for r in mine:
            if r["kind"] == "prompted":
                ax.axhline(r["score"], linestyle="--", color=COLORS["prompted"], label="prompted base (reference)")
        ax.set_title(f"Half-bake strength curve: {agent}")
        ax.set_xlabel("strength s (0 = base model, 1 = full bake)")
        ax.set_ylabel("judge score without the prompt (0–1)")
        ax.set_ylim(-0.05, 1.05)
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(plt, fig, path)


def plot_forgetting(report: dict, path: Path) -> bool:
    agents = list(dict.fromkeys(r["agent"] for r in report["asks"] if r["set"]))
    matrices = [(a, *forgetting_matrix(report["asks"], a)) for a in agents]
    matrices = [m for m in matrices if len(m[1]) > 1 and len(m[2]) > 1]
    if not matrices:
        return False
    plt = _plt()
    fig, axes = plt.subplots(1, len(matrices), figsize=(6.5 * len(matrices), 4.5), squeeze=False)
    for ax, (agent, points, sets, cells) in zip(axes[0], matrices):
        data = [[float("nan") if v is None else v for v in row] for row in cells]
        image = ax.imshow(data, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        for i, row in enumerate(cells):
            for j, v in enumerate(row):
                ax.text(j, i, _fmt(v), ha="center", va="center", color="white" if (v or 0) < 0.6 else "black")
        ax.set_xticks(range(len(sets)), sets)
        ax.set_yticks(range(len(points)), points)
        ax.set_xlabel("question set (news batch)")
        ax.set_ylabel("evaluation point")
        ax.set_title(f"Forgetting matrix, baked, closed-book: {agent}")
        fig.colorbar(image, ax=ax, label="accuracy (0–1)")
    return _save(plt, fig, path)


PLOTS = {
    "persona_stability.png": plot_probes,
    "knowledge.png": plot_knowledge,
    "forgetting.png": plot_forgetting,
    "bake_timeline.png": plot_bakes,
    "half_bake.png": plot_scales,
}


# ------------------------------------------------------------------- markdown
def _ask_section(report: dict) -> list[str]:
    rows = report["asks"]
    if not rows:
        return []
    summary = ask_summary(rows)
    lines = ["## Questions (closed-book unless prompted)", "",
             "Reliability: the questions as written. Generalization: their paraphrases. Locality: "
             "unrelated control questions (should stay at the base model's level). Scores are the "
             "fraction right (expected text, multiple choice) or the judge's rate.", ""]
    for agent, cells in summary.items():
        mine = [r for r in rows if r["agent"] == agent]
        conditions = _conditions(mine)
        table = []
        for point in _points(mine):
            for set_name in dict.fromkeys(_set_name(r) for r in mine if r["point"] == point):
                for metric in ("reliability", "generalization", "locality"):
                    values = [cells[(point, set_name)].get(c, {}).get(metric) for c in conditions]
                    if any(v is not None for v in values):
                        table.append([point, set_name, metric, *[_fmt(v) for v in values]])
        lines += [f"### {agent}", "", _table(["point", "questions", "metric", *conditions], table), ""]
        points_, sets, matrix = forgetting_matrix(rows, agent)
        if len(sets) > 1 and len(points_) > 1:
            lines += ["Forgetting matrix (baked, closed-book score per question set):", "",
                      _table(["point", *sets], [[p, *map(_fmt, row)] for p, row in zip(points_, matrix)]), ""]
        last = _points(mine)[-1]
        shown = [r for r in mine if r["point"] == last and r["variant"] == "original"][:6 * len(conditions)]
        if shown:
            lines += [f"Answers at “{last}”:", "", _table(
                ["question", "expected", "condition", "answer", "score"],
                [[r["question"], r["expected"] or "(judge)", r["condition"],
                  r["answer"].replace("\n", " ")[:160].replace("|", "\\|"), _fmt(r["score"])] for r in shown]), ""]
    return lines


def _probe_section(report: dict) -> list[str]:
    curves = probe_curves(report["probes"])
    if not curves:
        return []
    lines = ["## Stability over the conversation", "",
             "Each cell: the judge's mean score over the probe questions at that turn (asked with the "
             "conversation so far, not added to it).", ""]
    for agent, by_condition in curves.items():
        conditions = [c for c in CONDITION_ORDER if c in by_condition]
        turns = sorted({t for c in conditions for t, _ in by_condition[c]})
        table = [[str(t), *[_fmt(dict(by_condition[c]).get(t)) for c in conditions]] for t in turns]
        lines += [f"### {agent}", "", _table(["turn", *conditions], table), ""]
        first_last = []
        for c in conditions:
            points = by_condition[c]
            first_last.append([c, _fmt(points[0][1]), _fmt(points[-1][1]), _fmt(points[-1][1] - points[0][1]),
                               _fmt(mean(score for _, score in points))])
        lines += ["First to last probe, and the mean over all probed turns:", "",
                  _table(["condition", "first", "last", "change", "mean"], first_last), ""]
    return lines


def _bake_section(report: dict) -> list[str]:
    bakes = report["bakes"]
    lines = ["## Bakes", ""]
    if not bakes and not report["failed_bakes"]:
        return lines + ["No bake ran.", ""]
    table = [[b["name"], b["status"], ",".join(map(str, b["items"])), b["parent"] or "base",
              _fmt(b["fidelity"], 3), _fmt(b["locality_kl"], 3), _fmt(b["wall_s"], 1),
              _fmt(b.get("estimate_s"), 0), _fmt(b["train_tokens_per_s"], 0), b.get("dtype") or "–",
              (b.get("gate") or {}).get("reason", b.get("reason") or "")]
             for b in bakes]
    lines += [_table(["adapter", "status", "items", "parent", "fidelity", "locality KL", "wall s",
                      "estimated s", "train tok/s", "dtype", "gate"], table), ""]
    reasons = sorted({f"{b['dtype']} on {b.get('cpu_isa') or 'this device'}: {b['dtype_reason']}"
                      for b in bakes if b.get("dtype_reason")})
    lines += [f"Bake precision: {r}" for r in reasons] + ([""] if reasons else [])
    if report["swaps"]:
        lines += ["Hot swaps (adapter on disk → first token served with it): " + ", ".join(
            f"{s['adapter']} {s['latency_s'] * 1000:.0f} ms" for s in report["swaps"]), ""]
    for f in report["failed_bakes"]:
        lines.append(f"- failed bake run {f['run']} ({f['agent']}): {f['error']}; items {f['items']} stayed pending")
    return lines + [""]


def _scale_section(report: dict) -> list[str]:
    rows = report["scales"]
    if not rows:
        return []
    table = [[r["agent"], r["kind"], f"{r['value']:g}", _fmt(r["score"]),
              (r["answers"][0] if r["answers"] else "").replace("\n", " ")[:120].replace("|", "\\|")] for r in rows]
    return ["## Half-bake strength", "", _table(["agent", "kind", "s", "score", "first answer"], table), ""]


def _conversation_section(report: dict, turns: int = 6) -> list[str]:
    lines = []
    for agent, by_condition in report["conversations"].items():
        live = by_condition.get("live") or []
        if not live:
            continue
        lines += [f"### {agent} (live: live adapter + pending memories in context), first {turns} turns", ""]
        users = 0
        for m in live:
            if m["role"] == "user":
                users += 1
                if users > turns:
                    break
            lines.append(f"- **{m['role']}**: {m['content'][:300]}")
        lines.append("")
    return (["## Conversations", ""] + lines) if lines else []


def render(folder: Path | str) -> Path:
    """Write report.md and the plots from ``folder/report.json``; returns the report.md path."""
    folder = Path(folder)
    report = json.loads((folder / "report.json").read_text())
    plots = [name for name, plot in PLOTS.items() if plot(report, folder / name)]
    s = report["scenario"]
    lines = [f"# Scenario report: {s['name']}", "",
             s.get("description") or "", "",
             f"- model: `{s['model']}`, engine: {s['engine']}, seed {s['seed']}"
             + (f"; vLLM --dtype {s['serving_dtype']['dtype']} ({s['serving_dtype']['reason']})"
                if s.get("serving_dtype") else ""),
             f"- started {report['started_at']}, wall {report.get('wall_s', 0):.0f} s",
             f"- agents: {', '.join(report['agents'])}",
             "- conditions: base (no adapter, no prompt), prompted (memories in the prompt), baked "
             "(live adapter, no prompt), baked+prompted (both)", ""]
    problems = report.get("problems") or []
    if problems:  # said first: a run that did not show its main job must not look like one that did
        lines[2:2] = [f"**This run FAILED its main job: {len(problems)} problem(s).**", "",
                      *[f"- {p}" for p in problems], ""]
    for plot in plots:
        lines += [f"![{plot}]({plot})", ""]
    lines += _ask_section(report) + _probe_section(report) + _scale_section(report) + _bake_section(report)
    lines += _conversation_section(report)
    if report["errors"]:
        lines += ["## Errors", ""] + [f"- event {e['event']} ({e['agent']}): {e['error'][-300:]}" for e in report["errors"]]
    lines += ["", f"**Result: FAILED, {len(problems)} problem(s) (listed at the top).**" if problems
              else "**Result: every bake went live and every condition was measured.**"]
    out = folder / "report.md"
    out.write_text("\n".join(lines).rstrip() + "\n")
    return out
