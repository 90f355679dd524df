"""A GGUF path given in config is materialised once into the cache, offline."""

import pytest

from baking.model import DEFAULT_MODEL, resolve_model, shipped_gguf_path

pytestmark = pytest.mark.integration


def test_gguf_path_is_materialised_once(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMPTBAKE_CACHE", str(tmp_path))
    gguf = shipped_gguf_path(DEFAULT_MODEL)
    folder = resolve_model(str(gguf))
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    assert folder.is_relative_to(tmp_path)
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert resolve_model(str(gguf)) == folder  # cached: not converted again
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp
    assert not list(folder.parent.glob(".*"))  # no temp folders left behind
