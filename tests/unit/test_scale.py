import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from baking.scale import scale_adapter


def _adapter(folder):
    folder.mkdir()
    tensors = {
        "base_model.model.layers.0.self_attn.q_proj.lora_A.weight": torch.randn(2, 8),
        "base_model.model.layers.0.self_attn.q_proj.lora_B.weight": torch.randn(8, 2),
    }
    save_file(tensors, folder / "adapter_model.safetensors")
    (folder / "adapter_config.json").write_text(json.dumps({"r": 2, "lora_alpha": 4}))
    return tensors


@pytest.mark.parametrize("s", [0.0, 0.5, 1.0, 2.0])
def test_scale_multiplies_lora_b_only(tmp_path, s):
    original = _adapter(tmp_path / "src")
    dst = scale_adapter(tmp_path / "src", s, tmp_path / "dst")
    scaled = load_file(dst / "adapter_model.safetensors")
    for key, value in original.items():
        expected = value * s if ".lora_B." in key else value
        torch.testing.assert_close(scaled[key], expected)
    assert json.loads((dst / "adapter_config.json").read_text())["r"] == 2
    assert json.loads((dst / "scale.json").read_text())["scale"] == s


def test_scale_refuses_a_folder_without_adapter(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a PEFT adapter"):
        scale_adapter(tmp_path, 0.5, tmp_path / "dst")
