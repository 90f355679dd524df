from pathlib import Path

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


def test_the_serving_rank_is_the_smallest_vllm_accepts_for_what_is_baked():
    from agent.runtime.config import EngineConfig, RuntimeConfig
    from baking.config import serving_rank

    assert [serving_rank([r]) for r in (1, 4, 8, 9, 16, 17, 64)] == [1, 8, 8, 16, 16, 32, 64]
    with pytest.raises(ValueError, match="above vLLM's largest"):
        serving_rank([600])
    assert RuntimeConfig().bake.max_lora_rank == 8  # the shipped rank-8 bakes: not 64
    assert RuntimeConfig(bake={"lora_rank": 16}).bake.max_lora_rank == 16
    assert RuntimeConfig(engine={"max_lora_rank": 64}).bake.max_lora_rank == 64  # set by hand: kept
    with pytest.raises(ValidationError, match="max_lora_rank must be one of"):
        EngineConfig(max_lora_rank=12)


def test_a_restarted_runtime_serves_at_the_largest_rank_its_agents_lineages_hold(tmp_path):
    import json

    from agent.runtime.config import RuntimeConfig
    from agent.serving.vllm import VLLMSettings, vllm_command
    from agent.runtime.engine import serving_max_rank
    from memory import MemoryStore

    config = RuntimeConfig(home=tmp_path)
    store = MemoryStore(config.db_path)
    store.create_agent("ada")
    assert serving_max_rank(config, store) == 8
    folder = tmp_path / "adapters" / "ada" / "run-0001"
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"r": 32}))  # baked earlier at rank 32
    store.add("ada", "The tower is blue.", "news")
    store.promote(store.register_candidate(store.claim("ada", 60).id, str(folder), None, {}, passed=True).id, "ok")
    assert serving_max_rank(config, store) == 32
    command = vllm_command("m", 8000, VLLMSettings(max_lora_rank=serving_max_rank(config, store)))
    assert command[command.index("--max-lora-rank") + 1] == "32"


def test_the_runtime_sets_the_bakers_model_device_and_rank_and_a_conflict_is_an_error():
    from agent.runtime.config import RuntimeConfig

    config = RuntimeConfig(model="m", worker_device="cuda:1", bake={"lora_rank": 16})
    assert (config.bake.model, config.bake.device, config.bake.max_lora_rank) == ("m", "cuda:1", 16)
    assert RuntimeConfig(worker_device="cuda:1", bake={"device": "cuda:1"}).bake.device == "cuda:1"  # agreeing: fine
    for bake, message in (({"device": "cuda:0"}, "bake.device 'cuda:0' conflicts with worker_device 'cpu'"),
                          ({"model": "other"}, "bake.model 'other' conflicts with model 'm'"),
                          ({"max_lora_rank": 64}, "bake.max_lora_rank 64 conflicts with engine.max_lora_rank 8")):
        with pytest.raises(ValidationError, match=message):
            RuntimeConfig(model="m", bake=bake)
    moved = config.replace(worker_device="cpu", model="n")  # derived fields follow, never conflict
    assert (moved.bake.model, moved.bake.device, moved.bake.max_lora_rank) == ("n", "cpu", 16)
    # Above BakeConfig's default limit (64): the runtime's limit is the one the bake is read with.
    wide = RuntimeConfig(engine={"max_lora_rank": 128}, bake={"lora_rank": 128})
    assert wide.replace(home=Path("elsewhere")).bake.max_lora_rank == 128
    assert RuntimeConfig(bake={"lora_rank": 128}).replace(worker_device="cpu").bake.max_lora_rank == 128
