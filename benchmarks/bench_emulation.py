"""How close the slow-class emulation comes to a real AVX2-only machine.

    .venv/bin/python -m benchmarks.bench_emulation

On an AVX512-BF16 machine, the slow class (AVX2 only, bf16 emulated) is emulated by capping
oneDNN and MKL at AVX2 (``ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2``). Each
environment runs in its own process (the caps are read at library load), measuring:

- whether oneDNN reports native bf16 (what ``baking.hardware.choose_precision`` reads);
- square matmul rates in fp32 and bf16 (best of repeated products, medians of 5 rounds);
- a model-shaped product: 1024 tokens × the 135M model's 576→1536 MLP projection, in fp32.

The real AVX2-only figures (fp32 ≈ 69–70, bf16 0.8 GFLOP/s) were measured on a 2-core AMD EPYC
without AVX512 (issue 12). Writes benchmarks/results/emulation.{json,md}.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

from benchmarks.common import header, header_lines, write

REAL_AVX2 = {"fp32": 69.0, "bf16": 0.8}  # GFLOP/s, 2-core AVX2-only EPYC
CAPS = {"ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}

PROBE = r"""
import json, statistics, time, torch
def rate(dtype, n, rounds=5, reps=4):
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    a @ b
    out = []
    for _ in range(rounds):
        best = 9e9
        for _ in range(reps):
            t = time.perf_counter(); a @ b; best = min(best, time.perf_counter() - t)
        out.append(2 * n**3 / best / 1e9)
    return statistics.median(out)
def linear():
    x, w = torch.randn(1024, 576), torch.randn(1536, 576)
    torch.nn.functional.linear(x, w)
    best = 9e9
    for _ in range(20):
        t = time.perf_counter(); torch.nn.functional.linear(x, w); best = min(best, time.perf_counter() - t)
    return 2 * 1024 * 576 * 1536 / best / 1e9
print(json.dumps({
    "native_bf16": bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()),
    "fp32_1024": rate(torch.float32, 1024), "fp32_2048": rate(torch.float32, 2048, rounds=3, reps=2),
    "bf16_1024": rate(torch.bfloat16, 1024, rounds=3, reps=2) , "bf16_256": rate(torch.bfloat16, 256),
    "linear_fp32": linear(),
}))
"""


def measure(env: dict[str, str]) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE], env={**os.environ, **env}, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    clean = {k: v for k, v in os.environ.items() if k not in CAPS}
    os.environ.clear()
    os.environ.update(clean)
    native = [measure({}) for _ in range(3)]
    emulated = [measure(CAPS) for _ in range(3)]

    def med(rows, key):
        return statistics.median(r[key] for r in rows)

    keys = ("fp32_1024", "fp32_2048", "linear_fp32", "bf16_1024", "bf16_256")
    summary = header("bench_emulation") | {
        "native": {k: med(native, k) for k in keys} | {"native_bf16": native[0]["native_bf16"]},
        "emulated": {k: med(emulated, k) for k in keys} | {"native_bf16": emulated[0]["native_bf16"]},
        "real_avx2": REAL_AVX2,
    }
    print(write("emulation", summary, render(summary)).read_text())


def render(s: dict) -> str:
    n, e, r = s["native"], s["emulated"], s["real_avx2"]
    rows = [
        ("oneDNN reports native bf16", str(n["native_bf16"]), str(e["native_bf16"]), "False"),
        ("fp32 matmul 1024³, GFLOP/s", f"{n['fp32_1024']:.0f}", f"{e['fp32_1024']:.0f}", f"≈ {r['fp32']:.0f}"),
        ("fp32 matmul 2048³, GFLOP/s", f"{n['fp32_2048']:.0f}", f"{e['fp32_2048']:.0f}", f"≈ {r['fp32']:.0f}"),
        ("fp32 1024×576 · 576×1536 (model-shaped)", f"{n['linear_fp32']:.0f}", f"{e['linear_fp32']:.0f}", "–"),
        ("bf16 matmul 1024³, GFLOP/s", f"{n['bf16_1024']:.0f}", f"{e['bf16_1024']:.1f}", f"{r['bf16']}"),
        ("bf16 matmul 256³, GFLOP/s", f"{n['bf16_256']:.0f}", f"{e['bf16_256']:.1f}", f"{r['bf16']}"),
    ]
    ratio = e["fp32_2048"] / r["fp32"]
    return "\n".join([
        "# Slow-class emulation: AVX2 caps on an AVX512-BF16 machine",
        "",
        *header_lines(s),
        "Medians of 3 processes per environment. Emulated: `ONEDNN_MAX_CPU_ISA=AVX2 "
        "MKL_ENABLE_INSTRUCTIONS=AVX2`; real AVX2: the 2-core AMD EPYC without AVX512 of issue 12.",
        "",
        "| measure | native (AVX512-BF16) | emulated AVX2 | real AVX2-only |",
        "|---|---|---|---|",
        *[f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows],
        "",
        f"The caps turn native bf16 off (so the auto precision picks fp32, as on a real AVX2 machine) "
        f"and make bf16 emulated and slow. They do not slow fp32 to the real slow class: emulated "
        f"fp32 runs at {ratio:.1f}× the real AVX2 machine's 2048³ rate, so a time measured under "
        f"emulation understates the real slow class by about that factor where fp32 matmuls dominate.",
        "",
    ])


if __name__ == "__main__":
    main()
