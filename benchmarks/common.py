"""What every benchmark writes: the command, the date, the machine, and the result files."""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
# The slow-class emulation on an AVX512 machine (benchmarks/results/emulation.md): oneDNN and
# MKL capped at AVX2, so bf16 is emulated and the auto precision falls back to fp32.
EMULATION = ("ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def header(module: str) -> dict:
    """The provenance of one benchmark run: command, date, machine."""
    import torch

    from baking.hardware import cpu_isa

    caps = " ".join(f"{k}={os.environ[k]}" for k in EMULATION if k in os.environ)
    return {
        "command": (f"{caps} " if caps else "") + f"python -m benchmarks.{module} " + shlex.join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "isa": cpu_isa(),
        "machine": f"{os.cpu_count()} CPU cores ({cpu_model()}; class: {cpu_isa()}), torch {torch.__version__}, "
                   f"CUDA {'yes' if torch.cuda.is_available() else 'no'}",
    }


def class_suffix(isa: str) -> str:
    """Result-file suffix for a machine class: none for AVX512-BF16 (the tables' default), else
    e.g. ``_avx2`` (real or emulated) or ``_avx512``."""
    return "" if isa == "avx512_bf16" else "_" + isa.split()[0]


def header_lines(summary: dict) -> list[str]:
    return [f"Command: `{summary['command']}`", "", f"Date: {summary['date']}. Machine: {summary['machine']}.", ""]


def write(name: str, summary: dict, markdown: str) -> Path:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(summary, indent=2))
    path = RESULTS / f"{name}.md"
    path.write_text(markdown)
    return path
