"""Device, dtype and throughput helpers. Nothing here assumes a CPU or a GPU."""

from __future__ import annotations

import time

import torch


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


def bf16_supported(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        # oneDNN reports native bf16 (AVX512-BF16 / AMX); emulated bf16 is slower than fp32.
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bf16_matmul_flops(device: torch.device, size: int = 2048, repeats: int = 6) -> float:
    """Best observed bf16 matmul rate (FLOP/s) for a size^3 product on ``device``.

    Measured in the calling process so that a training rate can be compared with it under the
    same threads and machine load. Best-of-N, so the peak is not understated by noise.
    """
    dtype = torch.bfloat16 if bf16_supported(device) or device.type == "cpu" else torch.float32
    a = torch.randn(size, size, dtype=dtype, device=device)
    b = torch.randn(size, size, dtype=dtype, device=device)
    a @ b
    synchronize(device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best
