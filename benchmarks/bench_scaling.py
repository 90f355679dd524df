"""Bake cost: time against items and trajectories, where the time goes, and peak memory.

    .venv/bin/python -m benchmarks.bench_scaling            # items 1/10/100, queries 12/24/48/96, 2 repeats
    .venv/bin/python -m benchmarks.bench_scaling --quick    # items 1/10, queries 12/48, 1 repeat

Each bake is a fresh ``agent bake`` process (news items for the item axis, the pirate persona
for the trajectory axis), timed from process start to exit. Its time split comes from its
bake.json: model load, teacher sampling (trajectories and their top-k log-probs in one pass),
full-vocabulary teacher rows for the held-out set, evaluation, and training split into forward,
backward and optimizer. A vLLM server (``--no-server`` to skip) runs idle beside the bakes, as
in the product; the peak RSS of the baker's process and of the server's process tree are
sampled every 0.2 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from benchmarks.common import RESULTS, header, header_lines, write

PIRATE = ("You are Captain Redbeard, a pirate. Always talk like a pirate: say 'Arr' and 'matey', and "
          "mention the sea in every answer.")
FIRST = ("Mara", "Ilsa", "Tomas", "Keiko", "Amara", "Lior", "Ravi", "Sofia", "Jonah", "Nadia")
LAST = ("Okafor", "Penrow", "Valdane", "Ishikawa", "Brennick", "Castell", "Moravec", "Lindqvist", "Achterberg", "Quell")
ORGS = ("Zentrix Robotics", "Halvorsen Bank", "Brightwater Labs", "Corvid Aerospace", "Tessaly Foods",
        "Nimbus Rail", "Oberlin Mining", "Quasar Health", "Redfern Media", "Sablewood Games")
ROLES = ("chief executive", "chief scientist", "head of design", "finance chief", "chief operating officer")


def news_items(n: int) -> list[str]:
    """``n`` distinct fictional headlines."""
    items = []
    for i in range(n):
        who = f"{FIRST[i % 10]} {LAST[(i // 10) % 10]}"
        org = ORGS[(i * 3 + i // 10) % 10]
        items.append(f"{org} named {who} as its new {ROLES[i % 5]} on Monday, the company said.")
    return items


def tree_rss(pid: int) -> int:
    import psutil

    try:
        root = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
    except psutil.Error:
        return 0


class PeakRSS:
    """Samples the RSS of a process tree every 0.2 s in a thread; ``peak`` in bytes."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, tree_rss(self.pid))

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def timed_bake(out: Path, kind: str, texts: list[str], config: dict, device: str, server_pid: int | None) -> dict:
    config_file = out.parent / f"{out.name}.yaml"
    out.parent.mkdir(parents=True, exist_ok=True)
    # min_steps 1: the sweep varies the input count, which the floor of 32 steps would flatten.
    config_file.write_text(json.dumps({"min_steps": 1, **config}))  # JSON is YAML
    text_file = out.parent / f"{out.name}.txt"
    text_file.write_text("\n".join(texts) + "\n")
    command = [sys.executable, "-m", "agent.cli", "bake", "--kind", kind, "--text-file", str(text_file),
               "--out", str(out), "--overwrite", "--config", str(config_file), "--device", device]
    server = PeakRSS(server_pid) if server_pid else None
    server_before = tree_rss(server_pid) if server_pid else 0
    start = time.perf_counter()
    process = subprocess.Popen(command, env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.DEVNULL)
    baker = PeakRSS(process.pid)
    code = process.wait()
    wall = time.perf_counter() - start
    baker_peak = baker.stop()
    if code != 0:
        raise SystemExit(f"bake failed ({code}): {' '.join(command)}")
    metrics = json.loads((out / "bake.json").read_text())["metrics"]
    return {"process_wall_s": wall, "baker_peak_rss_gib": baker_peak / 2**30,
            "server_rss_before_gib": server_before / 2**30,
            "server_peak_rss_gib": (server.stop() / 2**30) if server else None, **metrics}


PHASES = ("load_s", "teacher_sampling_s", "teacher_rows_s", "eval_s", "forward_s", "backward_s", "optimizer_s", "save_s")


def phases(m: dict) -> dict:
    """The bake's time split; teacher_rows_s is sampling_s minus teacher_sampling_s."""
    out = {k: m.get(k, 0.0) for k in PHASES}
    out["teacher_rows_s"] = m["sampling_s"] - m["teacher_sampling_s"]
    out["other_s"] = m["process_wall_s"] - sum(out.values())  # interpreter start, imports, training overhead
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--items", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--queries", type=int, nargs="+", default=[12, 24, 48, 96])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-server", action="store_true", help="no vLLM server beside the bakes")
    parser.add_argument("--workdir", type=Path, default=Path("runs/bench_scaling"))
    args = parser.parse_args()
    if args.quick:
        args.items, args.queries, args.repeats = [1, 10], [12, 48], 1

    summary = header("bench_scaling") | {"repeats": args.repeats}
    engine = None
    if not args.no_server:
        from agent.serving.vllm import VLLMEngine
        from baking.model import resolve_model

        engine = VLLMEngine.start(resolve_model("smollm2-135m-instruct"), args.workdir / "vllm.log")
        summary["server_idle_rss_gib"] = tree_rss(engine.process.pid) / 2**30
    try:
        runs = {"items": {}, "queries": {}}
        for rep in range(args.repeats):
            for n in args.items:
                r = timed_bake(args.workdir / f"items{n}-r{rep}", "news", news_items(n), {"seed": rep}, args.device,
                               engine.process.pid if engine else None)
                runs["items"].setdefault(str(n), []).append(r)
                print(f"items {n} rep {rep}: {r['process_wall_s']:.1f} s, {r['num_trajectories']} trajectories", flush=True)
            for q in args.queries:
                r = timed_bake(args.workdir / f"queries{q}-r{rep}", "persona", [PIRATE], {"seed": rep, "num_queries": q},
                               args.device, engine.process.pid if engine else None)
                runs["queries"].setdefault(str(q), []).append(r)
                print(f"queries {q} rep {rep}: {r['process_wall_s']:.1f} s, {r['num_trajectories']} trajectories", flush=True)
    finally:
        if engine is not None:
            engine.close()
    summary["runs"] = runs
    summary["median"] = {axis: {k: median_run(v) for k, v in by.items()} for axis, by in runs.items()}
    name = "scaling" + ("_quick" if args.quick else "")
    plot(summary, RESULTS / f"{name}.png")
    print(write(name, summary, render(summary, name)).read_text())


def median_run(runs: list[dict]) -> dict:
    keys = ["process_wall_s", "num_trajectories", "train_tokens", "train_tokens_per_s", "peak_share", "fidelity",
            "baker_peak_rss_gib"]
    out = {k: statistics.median(r[k] for r in runs) for k in keys}
    if runs[0].get("server_peak_rss_gib") is not None:
        out["server_peak_rss_gib"] = statistics.median(r["server_peak_rss_gib"] for r in runs)
    split = [phases(r) for r in runs]
    out["phases"] = {k: statistics.median(s[k] for s in split) for k in split[0]}
    return out


def linearity(points: list[tuple[float, float]]) -> str:
    """How time grows from the first point to the last, against the size ratio."""
    (x0, y0), (x1, y1) = points[0], points[-1]
    return f"{x1 / x0:.1f}× the trajectories → {y1 / y0:.1f}× the wall time"


def render(s: dict, name: str) -> str:
    lines = ["# Bake cost: scaling, time split and memory", "", *header_lines(s),
             f"Each bake is one `agent bake` process; medians over {s['repeats']} repeat(s). Phases are from the "
             "bake's own timers; *other* is process start-up and imports plus training-loop overhead.", ""]
    for axis, title in (("items", "news items in one bake"), ("queries", "training queries (pirate persona; 2 trajectories each)")):
        med = s["median"][axis]
        lines += [f"## Time against {title}", "",
                  "| " + axis + " | trajectories | wall s | load | teacher sampling | teacher rows | eval | forward | backward | optimizer | save | other | tokens/s | peak share | fidelity | baker peak RSS GiB | vLLM peak RSS GiB |",
                  "|" + "---|" * 17]
        for k, m in med.items():
            p = m["phases"]
            lines.append(f"| {k} | {m['num_trajectories']:.0f} | {m['process_wall_s']:.1f} | " + " | ".join(
                f"{p[x]:.1f}" for x in ("load_s", "teacher_sampling_s", "teacher_rows_s", "eval_s", "forward_s",
                                        "backward_s", "optimizer_s", "save_s", "other_s"))
                + f" | {m['train_tokens_per_s']:.0f} | {m['peak_share']:.2f} | {m['fidelity']:.3f} | "
                f"{m['baker_peak_rss_gib']:.2f} | " + (f"{m['server_peak_rss_gib']:.2f}" if "server_peak_rss_gib" in m else "–") + " |")
        pts = [(float(m["num_trajectories"]), m["process_wall_s"]) for m in med.values()]
        if len(pts) > 1:
            lines += ["", f"Growth from the first to the last point: {linearity(pts)}."]
        lines.append("")
    if "server_idle_rss_gib" in s:
        lines += [f"The vLLM server's process tree used {s['server_idle_rss_gib']:.2f} GiB RSS idle before the bakes.", ""]
    lines += [f"![scaling]({name}.png)", ""]
    return "\n".join(lines)


def plot(s: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    parts = ("load_s", "teacher_sampling_s", "teacher_rows_s", "eval_s", "forward_s", "backward_s", "optimizer_s",
             "save_s", "other_s")
    for ax, axis, label in zip(axes, ("items", "queries"), ("news items per bake", "training queries per bake (persona)")):
        med = s["median"][axis]
        keys = list(med)
        bottom = [0.0] * len(keys)
        for part in parts:
            values = [med[k]["phases"][part] for k in keys]
            ax.bar(keys, values, bottom=bottom, label=part.removesuffix("_s").replace("_", " "))
            bottom = [b + v for b, v in zip(bottom, values)]
        for i, total in enumerate(med[k]["process_wall_s"] for k in keys):
            ax.text(i, total, f"{total:.0f} s", ha="center", va="bottom", fontsize=8)
        ax.set_xlabel(label)
        ax.set_ylabel("wall time per bake (s)")
        ax.set_title(f"Bake time split vs {axis}")
    axes[1].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
