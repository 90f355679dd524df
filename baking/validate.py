"""Check an adapter folder before any server loads it.

An adapter is a file tree anyone with disk access could have written. Before it is served it
must be: inside the adapters root (no path tricks, symlinks resolved), a plain LoRA config
within the server's rank limit, aimed at modules the base model has, and made of exactly the
tensors that config implies, each with the shape the base model's weights imply. Only headers
are read (safetensors), never the weights themselves.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

from baking.scale import ADAPTER_CONFIG, ADAPTER_WEIGHTS

_LORA_TENSOR = re.compile(r"base_model\.model\.(?P<module>.+)\.lora_(?P<which>[AB])\.weight")


class AdapterInvalid(ValueError):
    """The adapter folder failed validation; the message says which check and why."""


@lru_cache(maxsize=8)
def base_linear_shapes(model_dir: str) -> dict[str, tuple[int, int]]:
    """{module path: (out_features, in_features)} for every 2-D weight of the base model."""
    from safetensors import safe_open

    shapes = {}
    for file in sorted(Path(model_dir).glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as f:
            for key in f.keys():
                shape = f.get_slice(key).get_shape()
                if key.endswith(".weight") and len(shape) == 2:
                    shapes[key.removesuffix(".weight")] = (shape[0], shape[1])
    if not shapes:
        raise AdapterInvalid(f"base model {model_dir} has no safetensors weights to check adapters against")
    return shapes


def validate_adapter(path: Path | str, root: Path | str, model_dir: Path | str, max_rank: int) -> Path:
    """Return the adapter's resolved folder, or raise :class:`AdapterInvalid` with the reason."""
    from safetensors import SafetensorError, safe_open

    folder, root = Path(path).resolve(), Path(root).resolve()
    if not folder.is_relative_to(root):
        raise AdapterInvalid(f"{path} is outside the adapters root {root}; refusing to load it")
    config_file, weights = folder / ADAPTER_CONFIG, folder / ADAPTER_WEIGHTS
    if not config_file.is_file() or not weights.is_file():
        raise AdapterInvalid(f"{folder} needs {ADAPTER_CONFIG} and {ADAPTER_WEIGHTS}")
    try:
        cfg = json.loads(config_file.read_text())
    except (OSError, ValueError) as e:
        raise AdapterInvalid(f"{config_file} is not valid JSON: {e}") from e
    if not isinstance(cfg, dict) or cfg.get("peft_type") != "LORA":
        raise AdapterInvalid(f"{config_file}: peft_type must be LORA")
    rank = cfg.get("r")
    if not isinstance(rank, int) or not 1 <= rank <= max_rank:
        raise AdapterInvalid(f"{config_file}: rank r={rank!r} must be an integer in 1..{max_rank} (the server's limit)")
    if not isinstance(cfg.get("lora_alpha"), (int, float)):
        raise AdapterInvalid(f"{config_file}: lora_alpha must be a number")
    for key, allowed in (("use_dora", (False, None)), ("modules_to_save", (None, [])), ("bias", ("none", None))):
        if cfg.get(key) not in allowed:
            raise AdapterInvalid(f"{config_file}: {key}={cfg.get(key)!r} is not servable")
    targets = cfg.get("target_modules")
    if isinstance(targets, str) or not targets or not all(isinstance(t, str) for t in targets):
        raise AdapterInvalid(f"{config_file}: target_modules must be a non-empty list of module names")

    base = base_linear_shapes(str(Path(model_dir).resolve()))
    known = {module.rsplit(".", 1)[-1] for module in base}
    unknown = sorted(set(targets) - known)
    if unknown:
        raise AdapterInvalid(f"{config_file}: target_modules {unknown} are not modules of the base model")

    try:
        with safe_open(str(weights), framework="pt") as f:
            tensors = {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise AdapterInvalid(f"{weights} is not a readable safetensors file: {e}") from e
    seen: dict[str, set[str]] = {}
    for key, shape in tensors.items():
        match = _LORA_TENSOR.fullmatch(key)
        if match is None:
            raise AdapterInvalid(f"{weights}: unexpected tensor {key!r}")
        module, which = match["module"], match["which"]
        if module not in base or module.rsplit(".", 1)[-1] not in targets:
            raise AdapterInvalid(f"{weights}: tensor {key!r} targets {module!r}, not a target module of the base model")
        out_features, in_features = base[module]
        expected = (rank, in_features) if which == "A" else (out_features, rank)
        if shape != expected:
            raise AdapterInvalid(f"{weights}: {key} has shape {shape}, expected {expected}")
        seen.setdefault(module, set()).add(which)
    if not seen:
        raise AdapterInvalid(f"{weights} holds no LoRA tensors")
    halves = [m for m, w in seen.items() if w != {"A", "B"}]
    if halves:
        raise AdapterInvalid(f"{weights}: {halves[0]} has only lora_{''.join(seen[halves[0]])}")
    return folder
