"""Swap latency on a real vLLM server: adapter written on disk -> first token served with it.

    .venv/bin/python -m benchmarks.bench_swap_latency            # 10 swaps
    .venv/bin/python -m benchmarks.bench_swap_latency --quick    # 3 swaps

Bakes one small adapter with the real model, then for each swap copies it to a fresh folder
(a newly written adapter), loads it under a never-used name, asks for one token with it, and
unloads the previous one, as the runtime does. A one-token request on an already loaded adapter
is timed in the same run, so the load cost can be read as a ratio. Writes
benchmarks/results/swap_latency.{json,md}.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.common import header, header_lines, write

HI = [{"role": "user", "content": "Hi"}]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--swaps", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="3 swaps")
    args = parser.parse_args()
    if args.quick:
        args.swaps = 3

    from agent.serving.engine import SamplingParams
    from agent.serving.vllm import VLLMEngine, VLLMSettings
    from baking import BakeConfig, PromptItem, bake
    from baking.model import resolve_model

    work = Path(tempfile.mkdtemp(prefix="swap-bench-"))
    adapter = bake([PromptItem(kind="persona", text="You are a cheerful sailor.")], work / "src",
                   BakeConfig(num_queries=8, num_eval_queries=2, num_control_queries=2, epochs=1,
                              max_new_tokens=16), progress=False).path
    engine = VLLMEngine.start(resolve_model("smollm2-135m-instruct"), work / "vllm.log", VLLMSettings())
    one_token = SamplingParams(max_tokens=1)
    swaps, warm = [], []
    try:
        previous = None
        for i in range(args.swaps):
            fresh = work / f"v{i:04d}"
            shutil.copytree(adapter, fresh)  # "adapter written"
            start = time.perf_counter()
            engine.load_adapter(f"bench-v{i:04d}", fresh)
            engine.chat(HI, f"bench-v{i:04d}", one_token)
            swaps.append(time.perf_counter() - start)
            start = time.perf_counter()
            engine.chat(HI, f"bench-v{i:04d}", one_token)
            warm.append(time.perf_counter() - start)
            if previous:
                engine.unload_adapter(previous)
            previous = f"bench-v{i:04d}"
    finally:
        engine.close()
        shutil.rmtree(work, ignore_errors=True)

    summary = header("bench_swap_latency") | {
        "swaps": args.swaps,
        "swap_latency_s": swaps,
        "first_token_loaded_s": warm,
        "median_swap_s": statistics.median(swaps),
        "median_first_token_loaded_s": statistics.median(warm),
    }
    md = "\n".join([
        "# Swap latency (real vLLM)",
        "",
        *header_lines(summary),
        f"{args.swaps} swaps, medians.",
        "",
        "| what | median | goal |",
        "|---|---|---|",
        f"| adapter on disk → first token served with it | {summary['median_swap_s']*1000:.0f} ms | ≤ 1000 ms |",
        f"| one token from an already loaded adapter (same run) | {summary['median_first_token_loaded_s']*1000:.0f} ms | |",
        f"| ratio | {summary['median_swap_s']/summary['median_first_token_loaded_s']:.1f}× | |",
        "",
    ])
    write("swap_latency" + ("_quick" if args.quick else ""), summary, md)
    print(md)


if __name__ == "__main__":
    main()
