"""Load on the agents' endpoint while a bake and a hot swap happen.

    .venv/bin/python -m benchmarks.bench_load --bake '{"num_queries": 12, "epochs": 2, "num_threads": 1}'  # committed run
    .venv/bin/python -m benchmarks.bench_load --quick    # 2 clients, a small bake

A real runtime (vLLM, the shipped model) serves one agent through the OpenAI-compatible
endpoint of ``agent serve`` (``agent/serving/server.py``) on 127.0.0.1. Bounded load: each client sends
one greedy 16-token chat request at a time, at most one per ``--interval`` seconds. After a
warm-up the agent's persona is baked by a worker process, the adapter is swapped in, and the
load goes on. Reported: the error rate (goal 0), and latency p50/p95 before the bake, during
it, in the swap window (the swap's start to 5 s after it) and after.

On a 2-core CPU, serving 4 clients keeps vLLM on both cores and the baker gets about a quarter of
one. With its default two torch threads the baker oversubscribes the cores and crawls: the
default persona bake, and even a 12-query one, were still sampling their teacher after 8–12
minutes (2026-11-30). With ``num_threads: 1`` the 12-query bake took 67 s beside the
load, so the committed run uses ``--bake '{"num_queries": 12, "epochs": 2, "num_threads": 1}'``.
On a GPU box the baker has its own device (``--device cuda``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from pathlib import Path

from benchmarks.common import RESULTS, header, header_lines, write

PERSONA = ("You are Captain Redbeard, a pirate. Always talk like a pirate: say 'Arr' and 'matey', and "
           "mention the sea in every answer.")
QUESTIONS = ("What is the capital of France?", "How do I boil an egg?", "Tell me about the moon.",
             "What should I read next?", "How does rain form?", "Give me a tip for sleeping well.")


def percentile(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between a client's requests, at least")
    parser.add_argument("--warmup", type=float, default=20.0, help="seconds of load before the bake")
    parser.add_argument("--after", type=float, default=30.0, help="seconds of load after the swap")
    parser.add_argument("--bake", type=json.loads, default=None,
                        help="BakeConfig overrides as JSON (default: the runtime's; --quick: 12 queries, 2 epochs, 1 thread)")
    parser.add_argument("--min-fidelity", type=float, default=0.0,
                        help="the gate (default 0: this measures serving through a swap, not bake quality; "
                             "the product's 0.5 rejects the small --quick bake and nothing would be swapped)")
    parser.add_argument("--device", default="cpu", help="the baker's device")
    parser.add_argument("--workdir", type=Path, default=Path("runs/bench_load"))
    args = parser.parse_args()
    bake = args.bake or {}
    if args.quick:
        args.clients, args.warmup, args.after = 2, 10.0, 15.0
        bake = args.bake or {"num_queries": 12, "epochs": 2, "num_threads": 1}

    import shutil

    import httpx

    from agent.runtime.config import RuntimeConfig
    from agent.serving.vllm import free_port
    from agent.runtime.runtime import Runtime
    from agent.serving.server import AgentServer

    shutil.rmtree(args.workdir, ignore_errors=True)
    config = RuntimeConfig(home=args.workdir, worker_device=args.device, bake=bake,
                           gate={"min_fidelity": args.min_fidelity})
    runtime = Runtime.open(config)
    runtime.store.create_agent("ada")
    runtime.store.add("ada", PERSONA, "persona")
    server = AgentServer(runtime, port=free_port()).start()
    records: list[dict] = []
    stop = threading.Event()
    marks: dict[str, float] = {}
    t0 = time.monotonic()

    def client(k: int) -> None:
        http = httpx.Client(base_url=server.url, timeout=600)
        n = 0
        while not stop.is_set():
            started = time.monotonic()
            body = {"model": "ada", "messages": [{"role": "user", "content": QUESTIONS[(k + n) % len(QUESTIONS)]}],
                    "max_tokens": 16, "temperature": 0}
            try:
                response = http.post("/v1/chat/completions", json=body)
                ok, status = response.status_code == 200, response.status_code
                adapter = response.json().get("system_fingerprint") if ok else None
            except httpx.HTTPError as e:
                ok, status, adapter = False, type(e).__name__, None
            done = time.monotonic()
            records.append({"client": k, "start": started - t0, "end": done - t0, "latency_s": done - started,
                            "ok": ok, "status": status, "adapter": adapter})
            n += 1
            stop.wait(max(0.0, args.interval - (done - started)))

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(args.clients)]
    try:
        for t in threads:
            t.start()
        time.sleep(args.warmup)
        marks["bake_start"] = time.monotonic() - t0
        process = runtime.bake("ada", wait=False)
        process.wait()
        marks["swap_start"] = time.monotonic() - t0
        swaps = runtime.swap_ready("ada")
        marks["swap_end"] = time.monotonic() - t0
        if not swaps:
            latest = max(runtime.store.adapters("ada"), key=lambda a: a.version, default=None)
            raise SystemExit(f"no swap happened, so there is nothing to measure: bake exit {process.returncode}, "
                             f"adapter {latest.status if latest else 'none'} ({latest.reason if latest else ''})")
        time.sleep(args.after)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=600)
        server.stop()
        runtime.close()

    def window(lo: float, hi: float) -> list[dict]:
        return [r for r in records if lo <= r["start"] < hi]

    phases = {
        "before the bake": window(0, marks["bake_start"]),
        "during the bake": window(marks["bake_start"], marks["swap_start"]),
        "swap window (swap start → 5 s after)": window(marks["swap_start"], marks["swap_end"] + 5),
        "after the swap": window(marks["swap_end"] + 5, float("inf")),
        "all": records,
    }
    summary = header("bench_load") | {
        "clients": args.clients, "interval_s": args.interval, "bake": bake, "marks": marks, "records": records,
        "swap_latency_s": swaps[0].latency_s if swaps else None, "adapter": swaps[0].adapter if swaps else None,
        "phases": {name: {"requests": len(rs), "errors": sum(not r["ok"] for r in rs),
                          "p50_s": percentile([r["latency_s"] for r in rs if r["ok"]], 0.5),
                          "p95_s": percentile([r["latency_s"] for r in rs if r["ok"]], 0.95)}
                   for name, rs in phases.items()},
    }
    name = "load" + ("_quick" if args.quick else "")
    plot(summary, RESULTS / f"{name}.png")
    print(write(name, summary, render(summary, name)).read_text())


def render(s: dict, name: str) -> str:
    fmt = lambda x: "–" if x is None else f"{x:.2f}"  # noqa: E731
    rows = [f"| {phase} | {p['requests']} | {p['errors']} | {p['errors'] / max(p['requests'], 1):.1%} | "
            f"{fmt(p['p50_s'])} | {fmt(p['p95_s'])} |" for phase, p in s["phases"].items()]
    m = s["marks"]
    served = sorted({r["adapter"] for r in s["records"] if r["adapter"]})
    return "\n".join([
        "# Load during a bake and a hot swap", "", *header_lines(s),
        f"{s['clients']} clients on the agents' endpoint (127.0.0.1), one greedy 16-token request at a time each, "
        f"at most one per {s['interval_s']:.0f} s. The bake (config overrides: {s.get('bake') or 'none'}) ran from {m['bake_start']:.0f} s to {m['swap_start']:.0f} s; "
        f"the swap took {fmt(s['swap_latency_s'])} s (adapter written → first token served with it). "
        f"Answers came from: {', '.join(served)}.", "",
        "| phase | requests | errors | error rate | p50 latency s | p95 latency s |", "|---|---|---|---|---|---|",
        *rows, "", f"![load]({name}.png)", ""])


def plot(s: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 4.2))
    ok = [r for r in s["records"] if r["ok"]]
    bad = [r for r in s["records"] if not r["ok"]]
    for adapter in sorted({r["adapter"] for r in ok}):
        rs = [r for r in ok if r["adapter"] == adapter]
        ax.scatter([r["start"] for r in rs], [r["latency_s"] for r in rs], s=12, label=f"served by {adapter}")
    if bad:
        ax.scatter([r["start"] for r in bad], [r["latency_s"] for r in bad], s=30, marker="x", color="red",
                   label=f"errors ({len(bad)})")
    m = s["marks"]
    ax.axvspan(m["bake_start"], m["swap_start"], color="tab:orange", alpha=0.15, label="bake (worker process)")
    ax.axvline(m["swap_start"], color="black", linestyle="--", label="swap")
    ax.set_xlabel("time since the load started (s)")
    ax.set_ylabel("request latency (s)")
    ax.set_title(f"Latency per request, {s['clients']} clients, through a bake and a hot swap")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
