"""Adapter strength control: scale a LoRA adapter by multiplying its lora_B weights.

vLLM has no per-request LoRA scale, so a half-strength adapter is a copy with lora_B * s:
the update B @ A becomes s * (B @ A), exactly the adapter at strength s.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from safetensors.torch import load_file, save_file

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"


def scale_adapter(src: Path | str, s: float, dst: Path | str) -> Path:
    """Write a copy of the PEFT adapter at ``src`` to ``dst`` with every ``lora_B`` times ``s``."""
    src, dst = Path(src), Path(dst)
    if not (src / ADAPTER_WEIGHTS).is_file() or not (src / ADAPTER_CONFIG).is_file():
        raise FileNotFoundError(f"{src} is not a PEFT adapter folder ({ADAPTER_WEIGHTS} missing)")
    tensors = load_file(src / ADAPTER_WEIGHTS)
    scaled = {k: v * s if ".lora_B." in k else v for k, v in tensors.items()}
    if not any(".lora_B." in k for k in tensors):
        raise ValueError(f"{src}: no lora_B tensors found; is it a LoRA adapter?")
    dst.mkdir(parents=True, exist_ok=True)
    save_file(scaled, dst / ADAPTER_WEIGHTS)
    shutil.copy(src / ADAPTER_CONFIG, dst / ADAPTER_CONFIG)
    (dst / "scale.json").write_text(json.dumps({"source": str(src.resolve()), "scale": s}, indent=2))
    return dst
