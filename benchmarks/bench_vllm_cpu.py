"""vLLM-CPU serving set-ups, measured in one run: base against a rank-8 LoRA adapter.

For each set-up (dtype, --max-lora-rank, thread binding, reserved cores, preloaded allocator
and OpenMP), a managed vLLM serves the shipped SmolLM2-135M with one adapter of the rank the
runtime bakes (8, on every projection the baker adapts). Measured: single-request latency
(p50 of ``--single`` greedy answers of ``--tokens`` tokens) and throughput with ``--inflight``
requests in flight, for the base model and for the adapter; the ratio LoRA/base is the
number issue 14 asks for (goal: LoRA within 1.3x of base).

    python -m benchmarks.bench_vllm_cpu                      # every set-up below
    python -m benchmarks.bench_vllm_cpu --only shipped,grouped
    python -m benchmarks.bench_vllm_cpu --beside-bake        # serving while a bake's load runs

``--beside-bake`` asks how vLLM should bind its threads when the baker needs cores too. Beside
each set-up of ``BESIDE`` runs a bake-like load: a process doing the baker's GEMMs (the training
dtype, the baker's thread count, pinned where the set-up says) that reports its GFLOP/s. The
rows give serving and the baker's rate together, and the baker's rate alone for reference.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks.common import class_suffix, header, header_lines, write

# name -> VLLMSettings fields; "shipped" is what the runtime starts by default.
ALL_CORES = f"0-{(os.cpu_count() or 1) - 1}"  # OpenMP on every core, none kept back for vLLM's scheduler
SETUPS: dict[str, dict] = {
    "old-default-r64": {"max_lora_rank": 64},  # before issue 14: --max-lora-rank 64, vLLM's own settings
    "r8": {},  # the rank the runtime bakes, vLLM's own CPU settings
    "fp32": {"dtype": "float32"},
    "preload": {"preload": "auto"},
    "all-cores": {"reserved_cpus": 0, "omp_threads_bind": ALL_CORES},
    "nobind": {"omp_threads_bind": "nobind"},
    "grouped": {"lora_cpu_kernel": "grouped"},
    "grouped+all-cores+preload": {"lora_cpu_kernel": "grouped", "reserved_cpus": 0, "omp_threads_bind": ALL_CORES,
                                  "preload": "auto"},
    "fused+all-cores+preload": {"lora_cpu_kernel": "fused", "reserved_cpus": 0, "omp_threads_bind": ALL_CORES,
                                "preload": "auto"},
    "merged+all-cores+preload": {"lora_cpu_kernel": "merged", "reserved_cpus": 0, "omp_threads_bind": ALL_CORES,
                                 "preload": "auto"},
    "shipped": {},  # the runtime's defaults (chosen from the rows above)
}
# --beside-bake: name -> (VLLMSettings fields, the baker's threads, the baker's cores or None)
LAST = (os.cpu_count() or 1) - 1
BESIDE: dict[str, tuple[dict, int, list[int] | None]] = {
    "shipped, baker on every core": ({}, os.cpu_count() or 1, None),  # both share every core
    "vLLM on the first cores, baker on the last": ({"omp_threads_bind": f"0-{max(LAST - 1, 0)}", "reserved_cpus": 0},
                                                    1, [LAST]),
}
QUESTIONS = ["Tell me about the ocean.", "What is a good breakfast?", "Explain how a bicycle works.",
             "Describe a rainy day in a city.", "What makes a good friend?", "How do plants grow?",
             "Give me advice for a job interview.", "What is your favourite season and why?"]


def make_adapter(model_dir: Path, out: Path) -> Path:
    """A rank-8 LoRA on every projection the baker adapts, with random non-zero B (speed does
    not depend on the values)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from baking.config import BakeConfig

    if (out / "adapter_config.json").is_file():
        return out
    cfg = BakeConfig()
    model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32)
    peft = get_peft_model(model, LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha,
                                            target_modules=cfg.target_modules, lora_dropout=0.0))
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in peft.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.01)
    peft.save_pretrained(out)
    return out


def settings_for(name: str, fields: dict):
    """Each set-up changes ``fields`` from vLLM's own CPU settings at the runtime's rank; the
    ``shipped`` set-up is what the runtime starts by default today."""
    from agent.runtime.config import RuntimeConfig
    from agent.runtime.engine import serving_max_rank, vllm_settings
    from agent.serving.vllm import VLLMSettings, cpu_preload_libraries

    engine = RuntimeConfig().engine
    if name == "shipped":
        return dataclasses.replace(vllm_settings(RuntimeConfig()), max_loras=2)
    base = dict(max_lora_rank=serving_max_rank(RuntimeConfig()), dtype="auto", max_model_len=engine.max_model_len,
                kv_cache_gib=engine.kv_cache_gib, max_loras=2)
    fields = dict(fields)
    fields["preload"] = cpu_preload_libraries() if fields.get("preload") == "auto" else ()
    return VLLMSettings(**{**base, **fields})


def measure(engine, adapter: str | None, args) -> dict:
    from agent.serving.engine import SamplingParams

    params = SamplingParams(temperature=0.0, max_tokens=args.tokens, seed=None)

    def one(i: int) -> tuple[float, int]:
        start = time.perf_counter()
        c = engine.chat([{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}], adapter, params)
        return time.perf_counter() - start, c.completion_tokens

    one(0)  # warm-up
    single = [one(i)[0] for i in range(args.single)]
    start = time.perf_counter()
    with ThreadPoolExecutor(args.inflight) as pool:
        done = list(pool.map(one, range(args.requests)))
    wall = time.perf_counter() - start
    return {"p50_s": statistics.median(single), "req_per_s": len(done) / wall,
            "tokens_per_s": sum(t for _, t in done) / wall}


BAKER_LOAD = """
import ctypes, os, signal, sys, time, torch
from baking.hardware import choose_precision
ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: dies with the benchmark
threads, cores, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
if cores:
    os.sched_setaffinity(0, [int(c) for c in cores.split(",")])
torch.set_num_threads(threads)
dtype = torch.bfloat16 if choose_precision(torch.device("cpu"), "auto").bf16 else torch.float32
a, b = torch.randn(576, 1536, dtype=dtype), torch.randn(1536, 576, dtype=dtype)
done, start = [0], time.perf_counter()
def stop(*_):
    open(out, "w").write(str(done[0] * 2 * 576 * 1536 * 576 / (time.perf_counter() - start) / 1e9))
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
open(out + ".ready", "w").close()
while True:
    a @ b
    done[0] += 1
"""


class BakerLoad:
    """The baker's GEMMs (an MLP projection of the 135M model, in the training dtype) in their
    own process, ``threads`` threads on ``cores``; ``gflops()`` stops it and returns its rate."""

    def __init__(self, threads: int, cores: list[int] | None, out: Path) -> None:
        import subprocess
        import sys

        self.out = out
        ready = out.with_name(out.name + ".ready")
        out.unlink(missing_ok=True)
        ready.unlink(missing_ok=True)
        self.process = subprocess.Popen([sys.executable, "-c", BAKER_LOAD, str(threads),
                                         ",".join(map(str, cores or [])), str(out)])
        deadline = time.monotonic() + 120
        while not ready.exists():  # past torch's import and the dtype probe, the handler in place
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the baker load did not start (exit {self.process.poll()})")
            time.sleep(0.2)

    def gflops(self) -> float:
        self.process.terminate()
        self.process.wait(timeout=30)
        return float(self.out.read_text())


def run_setup(name: str, fields: dict, model_dir: Path, adapter: Path, args, beside=None) -> dict:
    from agent.serving.engine import EngineError
    from agent.serving.vllm import VLLMEngine

    settings = settings_for("shipped" if beside else name, fields)
    if beside:
        settings = dataclasses.replace(settings, **fields)
    row = {"setup": name, "dtype": settings.dtype, "max_lora_rank": settings.max_lora_rank,
           "lora_cpu_kernel": settings.lora_cpu_kernel,
           "omp_threads_bind": settings.omp_threads_bind, "reserved_cpus": settings.reserved_cpus,
           "preload": [Path(p).name for p in settings.preload]}
    try:
        engine = VLLMEngine.start(model_dir, args.workdir / f"vllm-{name}.log", settings)
    except EngineError as e:
        return {**row, "error": str(e).splitlines()[0]}
    try:
        row["dtype"] = engine.settings.dtype
        engine.load_adapter("lora", adapter)
        load = BakerLoad(*beside, args.workdir / "baker-load.txt") if beside else None
        try:
            row["base"] = measure(engine, None, args)
            row["lora"] = measure(engine, "lora", args)
        finally:
            if load:
                row["baker_gflops"] = load.gflops()
                row["baker_threads"], row["baker_cores"] = beside
    finally:
        engine.close()
    kv = re.findall(r"KV cache size: ([\d,]+) tokens", (args.workdir / f"vllm-{name}.log").read_text(errors="replace"))
    row["kv_cache_tokens"] = int(kv[-1].replace(",", "")) if kv else None
    row["kv_cache_gib"] = settings.kv_cache_gib
    row["lora_over_base_p50"] = row["lora"]["p50_s"] / row["base"]["p50_s"]
    row["base_over_lora_throughput"] = row["base"]["req_per_s"] / row["lora"]["req_per_s"]
    print(f"{name}: base p50 {row['base']['p50_s']:.2f} s, LoRA p50 {row['lora']['p50_s']:.2f} s "
          f"({row['lora_over_base_p50']:.2f}x); base {row['base']['req_per_s']:.2f} req/s, LoRA "
          f"{row['lora']['req_per_s']:.2f} req/s ({row['base_over_lora_throughput']:.2f}x)", flush=True)
    return row


def render(summary: dict) -> str:
    lines = ["# vLLM-CPU serving set-ups: base vs a rank-8 adapter", "", *header_lines(summary),
             f"One managed vLLM per set-up, SmolLM2-135M, {summary['tokens']}-token greedy answers; "
             f"p50 of {summary['single']} single requests, throughput of {summary['requests']} requests "
             f"with {summary['inflight']} in flight; the median of {summary.get('repeat', 1)} run(s) of every "
             "set-up, taken in turn (ratios: the median of each run's own ratio). Ratios > 1 mean LoRA is slower "
             "(goal ≤ 1.3). KV cache: "
             + "; ".join(sorted({f"{r['kv_cache_gib']} GiB holds {r['kv_cache_tokens']:,} tokens" for r in summary["rows"]
                                 if r.get("kv_cache_tokens")})) + ".", "",
             "| set-up | dtype | max rank | LoRA kernel | bind | reserved | preload | base p50 s | LoRA p50 s | LoRA/base p50 "
             "| base req/s | LoRA req/s | base/LoRA req/s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in summary["rows"]:
        if "error" in r:
            lines.append(f"| {r['setup']} | {r['dtype']} | {r['max_lora_rank']} | {r['lora_cpu_kernel']} | | | "
                         f"| failed: {r['error']} | | | | | |")
            continue
        lines.append(
            f"| {r['setup']} | {r['dtype']} | {r['max_lora_rank']} | {r['lora_cpu_kernel']} | "
            f"{r['omp_threads_bind'] or 'vLLM'} | "
            f"{r['reserved_cpus'] if r['reserved_cpus'] is not None else 'vLLM'} | "
            f"{', '.join(r['preload']) or '-'} | {r['base']['p50_s']:.2f} | {r['lora']['p50_s']:.2f} | "
            f"{r['lora_over_base_p50']:.2f} | {r['base']['req_per_s']:.2f} | {r['lora']['req_per_s']:.2f} | "
            f"{r['base_over_lora_throughput']:.2f} |")
    return "\n".join(lines) + "\n"


def render_beside(summary: dict) -> str:
    lines = ["# vLLM-CPU beside a bake: how serving should share the cores", "", *header_lines(summary),
             f"The shipped server (rank-8 adapter, {summary['tokens']}-token greedy answers, p50 of "
             f"{summary['single']} single requests, {summary['requests']} requests with {summary['inflight']} in "
             "flight) while a bake-like load runs: the baker's GEMMs (576x1536 by 1536x576, the training dtype) "
             f"in their own process. The baker alone: {summary['baker_alone_gflops']:.1f} GFLOP/s on every core.",
             "", "| set-up | vLLM bind | baker threads | baker cores | base p50 s | LoRA p50 s | base req/s | "
             "LoRA req/s | baker GFLOP/s beside | baker share of alone |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in summary["rows"]:
        if "error" in r:
            lines.append(f"| {r['setup']} | failed: {r['error']} | | | | | | | | |")
            continue
        lines.append(f"| {r['setup']} | {r['omp_threads_bind']} | {r['baker_threads']} | "
                     f"{','.join(map(str, r['baker_cores'] or [])) or 'any'} | {r['base']['p50_s']:.2f} | "
                     f"{r['lora']['p50_s']:.2f} | {r['base']['req_per_s']:.2f} | {r['lora']['req_per_s']:.2f} | "
                     f"{r['baker_gflops']:.1f} | {r['baker_gflops'] / summary['baker_alone_gflops']:.2f} |")
    return "\n".join(lines) + "\n"


def median_rows(runs: list[dict]) -> list[dict]:
    """One row per set-up: the median of its repeats (taken in turn, so a slow spell of the
    machine hits every set-up alike), each repeat kept under ``repeats``."""
    rows = []
    for name in dict.fromkeys(r["setup"] for r in runs):
        mine = [r for r in runs if r["setup"] == name]
        ok = [r for r in mine if "error" not in r]
        if not ok:
            rows.append(mine[0])
            continue
        row = {**ok[0], "repeats": [{k: r[k] for k in ("base", "lora")} for r in ok],
               "failed_repeats": [r["error"] for r in mine if "error" in r]}
        for side in ("base", "lora"):
            row[side] = {k: statistics.median(r[side][k] for r in ok) for k in ok[0][side]}
        for ratio in ("lora_over_base_p50", "base_over_lora_throughput"):
            row[ratio] = statistics.median(r[ratio] for r in ok)
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="comma-separated set-up names (default: all)")
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--single", type=int, default=5)
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--inflight", type=int, default=8)
    parser.add_argument("--workdir", type=Path, default=Path("runs/bench_vllm_cpu"))
    parser.add_argument("--name", default="vllm_cpu", help="results file (benchmarks/results/NAME.md)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of every set-up, taken in turn; medians")
    parser.add_argument("--beside-bake", action="store_true", help="the BESIDE set-ups, a bake-like load beside")
    args = parser.parse_args()
    from baking.model import resolve_model

    args.workdir.mkdir(parents=True, exist_ok=True)
    model_dir = resolve_model("smollm2-135m-instruct")
    adapter = make_adapter(model_dir, args.workdir / "adapter-r8")
    if args.beside_bake and (os.cpu_count() or 1) < 2:
        raise SystemExit("--beside-bake compares ways to share cores: it needs at least 2")
    if args.beside_bake:
        alone = BakerLoad(os.cpu_count() or 1, None, args.workdir / "baker-load.txt")
        time.sleep(10)
        summary = {**header("bench_vllm_cpu"), "tokens": args.tokens, "single": args.single,
                   "requests": args.requests, "inflight": args.inflight, "baker_alone_gflops": alone.gflops(),
                   "rows": [run_setup(n, f, model_dir, adapter, args, beside=(t, c))
                            for n, (f, t, c) in BESIDE.items()]}
        print(f"wrote {write('vllm_cpu_beside' + class_suffix(summary['isa']), summary, render_beside(summary))}")
        return
    names = args.only.split(",") if args.only else list(SETUPS)
    unknown = [n for n in names if n not in SETUPS]
    if unknown:
        raise SystemExit(f"unknown set-up(s) {unknown}; known: {list(SETUPS)}")
    summary = {**header("bench_vllm_cpu"), "tokens": args.tokens, "single": args.single,
               "requests": args.requests, "inflight": args.inflight,
               "repeat": args.repeat,
               "rows": median_rows([run_setup(n, SETUPS[n], model_dir, adapter, args)
                                    for _ in range(args.repeat) for n in names])}
    failed = [r["setup"] for r in summary["rows"] if "error" in r or r.get("failed_repeats")]
    path = write(args.name + class_suffix(summary["isa"]), summary, render(summary))
    print(f"wrote {path}")
    if failed:
        raise SystemExit(f"set-up(s) failed to serve: {failed}")


if __name__ == "__main__":
    main()
