import pytest
from pydantic import ValidationError

from baking.config import BakeConfig, PromptItem


def test_defaults_are_valid_and_in_the_schema():
    config = BakeConfig()
    schema = BakeConfig.model_json_schema()["properties"]
    for name in ("num_queries", "trajectories_per_query", "temperature", "max_new_tokens",
                 "lora_rank", "lora_alpha", "target_modules", "lr", "epochs", "max_steps",
                 "batch_size", "loss", "topk", "dtype", "device", "seed", "half_bake_fractions"):
        assert name in schema and hasattr(config, name)
    assert config.target_modules == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def test_rank_above_limit_is_refused_with_both_numbers():
    with pytest.raises(ValidationError, match="lora_rank 128 is above max_lora_rank 64"):
        BakeConfig(lora_rank=128)
    assert BakeConfig(lora_rank=128, max_lora_rank=128).lora_rank == 128


def test_unsupported_vllm_max_rank_is_refused():
    with pytest.raises(ValidationError, match="max_lora_rank must be one of"):
        BakeConfig(max_lora_rank=12)


def test_typo_in_a_field_is_an_error_naming_it():
    with pytest.raises(ValidationError, match="lora_rnak"):
        BakeConfig(lora_rnak=4)


def test_loss_and_fractions_are_checked():
    with pytest.raises(ValidationError):
        BakeConfig(loss="reverse")
    with pytest.raises(ValidationError, match="half_bake_fractions"):
        BakeConfig(half_bake_fractions=[0.5, 1.5])
    assert BakeConfig(half_bake_fractions=[0.5, 0.25, 0.5]).half_bake_fractions == [0.25, 0.5]


def test_prompt_items_refuse_empty_text_and_unknown_kinds():
    with pytest.raises(ValidationError, match="empty"):
        PromptItem(kind="persona", text="   ")
    with pytest.raises(ValidationError):
        PromptItem(kind="note", text="a note is memory, not a bake kind")
    assert PromptItem(kind="fact", text="  Water boils at 100 C.  ").text == "Water boils at 100 C."


def test_from_yaml(tmp_path):
    path = tmp_path / "bake.yaml"
    path.write_text("lora_rank: 4\nloss: full\n")
    config = BakeConfig.from_yaml(path)
    assert (config.lora_rank, config.loss) == (4, "full")
    path.write_text("- not a mapping\n")
    with pytest.raises(ValueError, match="expected a mapping"):
        BakeConfig.from_yaml(path)
