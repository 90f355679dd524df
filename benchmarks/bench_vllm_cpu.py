"""vLLM-CPU serving set-ups, measured in one run: base against a rank-8 LoRA adapter.

For each set-up (dtype, --max-lora-rank, thread binding, reserved cores, preloaded allocator
and OpenMP), a managed vLLM serves the shipped SmolLM2-135M with one adapter of the rank the
runtime bakes (8, on every projection the baker adapts). Measured: single-request latency
(p50 of ``--single`` greedy answers of ``--tokens`` tokens) and throughput with ``--inflight``
requests in flight, for the base model and for the adapter; the ratio LoRA/base is the
number issue 14 asks for (goal: LoRA within 1.3x of base).

    python -m benchmarks.bench_vllm_cpu                      # every set-up below
    python -m benchmarks.bench_vllm_cpu --only shipped,grouped
"""

from __future__ import annotations

import argparse
import os
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
    "shipped": {},  # the runtime's defaults (chosen from the rows above)
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
    from agent.serving.vllm import VLLMSettings, cpu_preload_libraries
    from agent.runtime.engine import omp_bind, serving_max_rank

    engine = RuntimeConfig().engine
    if name == "shipped":
        fields = {"omp_threads_bind": omp_bind(engine.omp_threads_bind), "reserved_cpus": engine.reserved_cpus,
                  "preload": engine.preload, "lora_cpu_kernel": engine.lora_cpu_kernel, "dtype": engine.dtype}
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


def run_setup(name: str, fields: dict, model_dir: Path, adapter: Path, args) -> dict:
    from agent.serving.engine import EngineError
    from agent.serving.vllm import VLLMEngine

    settings = settings_for(name, fields)
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
        row["base"] = measure(engine, None, args)
        row["lora"] = measure(engine, "lora", args)
    finally:
        engine.close()
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
             f"with {summary['inflight']} in flight. Ratios > 1 mean LoRA is slower (goal ≤ 1.3).", "",
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="comma-separated set-up names (default: all)")
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--single", type=int, default=5)
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--inflight", type=int, default=8)
    parser.add_argument("--workdir", type=Path, default=Path("runs/bench_vllm_cpu"))
    args = parser.parse_args()
    from baking.model import resolve_model

    args.workdir.mkdir(parents=True, exist_ok=True)
    model_dir = resolve_model("smollm2-135m-instruct")
    adapter = make_adapter(model_dir, args.workdir / "adapter-r8")
    names = args.only.split(",") if args.only else list(SETUPS)
    unknown = [n for n in names if n not in SETUPS]
    if unknown:
        raise SystemExit(f"unknown set-up(s) {unknown}; known: {list(SETUPS)}")
    summary = {**header("bench_vllm_cpu"), "tokens": args.tokens, "single": args.single,
               "requests": args.requests, "inflight": args.inflight,
               "rows": [run_setup(n, SETUPS[n], model_dir, adapter, args) for n in names]}
    failed = [r["setup"] for r in summary["rows"] if "error" in r]
    path = write("vllm_cpu" + class_suffix(summary["isa"]), summary, render(summary))
    print(f"wrote {path}")
    if failed:
        raise SystemExit(f"set-up(s) failed to serve: {failed}")


if __name__ == "__main__":
    main()
