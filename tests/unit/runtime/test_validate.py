"""Adapter folders are validated before loading: root, config shape, rank, target modules,
tensor names and shapes. A refused adapter is never loaded and the store records why."""

import json
import shutil

import pytest
from safetensors.torch import load_file, save_file

from agent.runtime.config import RuntimeConfig
from agent.serving.engine import EngineError
from agent.serving.hf import TransformersEngine
from agent.runtime.runtime import Runtime
from baking import BakeConfig, PromptItem, bake
from baking.validate import AdapterInvalid, validate_adapter
from tests.unit.tiny_bake import tiny_bake

TINY = tiny_bake(num_queries=2, num_eval_queries=1, num_control_queries=1, max_new_tokens=4)


@pytest.fixture(scope="module")
def good(tiny_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("adapters")
    bake([PromptItem(kind="persona", text="You are terse.")], root / "good",
         BakeConfig(model=str(tiny_model), **TINY), progress=False)
    return root / "good"


def corrupt(good, tmp_path, config=None, tensors=None):
    bad = tmp_path / "adapters" / "bad"
    shutil.copytree(good, bad)
    if config is not None:
        cfg = json.loads((bad / "adapter_config.json").read_text())
        config(cfg)
        (bad / "adapter_config.json").write_text(json.dumps(cfg))
    if tensors is not None:
        weights = load_file(bad / "adapter_model.safetensors")
        save_file(tensors(weights), bad / "adapter_model.safetensors")
    return bad


def test_a_good_adapter_passes(good, tiny_model):
    assert validate_adapter(good, good.parent, tiny_model, 64) == good.resolve()


@pytest.mark.parametrize("config, tensors, message", [
    (lambda c: c.update(r=128), None, "rank r=128 must be an integer in 1..64"),
    (lambda c: c.update(peft_type="IA3"), None, "peft_type must be LORA"),
    (lambda c: c.update(target_modules=["q_proj", "warp_drive"]), None, "not modules of the base model"),
    (lambda c: c.update(use_dora=True), None, "use_dora=True is not servable"),
    (None, lambda w: {k.replace("q_proj", "qq_proj"): v for k, v in w.items()}, "not a target module"),
    (None, lambda w: {k: (v[:, :-1].contiguous() if ".lora_A." in k else v) for k, v in w.items()}, "has shape"),
    (None, lambda w: {k: v for k, v in w.items() if ".lora_B." not in k}, "has only lora_A"),
    (None, lambda w: {**w, "evil.weight": next(iter(w.values())).clone()}, "unexpected tensor"),
])
def test_bad_adapters_are_refused_with_the_reason(good, tiny_model, tmp_path, config, tensors, message):
    bad = corrupt(good, tmp_path, config, tensors)
    with pytest.raises(AdapterInvalid, match=message):
        validate_adapter(bad, tmp_path / "adapters", tiny_model, 64)


def test_paths_outside_the_root_are_refused(good, tiny_model, tmp_path):
    (tmp_path / "adapters").mkdir()
    with pytest.raises(AdapterInvalid, match="outside the adapters root"):
        validate_adapter(tmp_path / "adapters" / ".." / ".." / good.parent.name / "good", tmp_path / "adapters",
                         tiny_model, 64)
    (tmp_path / "adapters" / "link").symlink_to(good)  # a symlink out of the root
    with pytest.raises(AdapterInvalid, match="outside the adapters root"):
        validate_adapter(tmp_path / "adapters" / "link", tmp_path / "adapters", tiny_model, 64)


def _with_candidate(tiny_model, tmp_path, folder):
    """A runtime on the tiny model whose agent ada has ``folder`` registered as a gate-passed candidate."""
    config = RuntimeConfig(home=tmp_path, model=str(tiny_model), engine={"kind": "transformers"})
    runtime = Runtime.open(config, TransformersEngine(str(tiny_model)))
    runtime.store.create_agent("ada")
    runtime.store.add("ada", "The tower is blue.", "fact")
    run = runtime.store.claim("ada", lease_s=60)
    return runtime, runtime.store.register_candidate(run.id, str(folder), None, {}, passed=True)


def test_the_runtime_refuses_a_tampered_candidate_and_serves_on(good, tiny_model, tmp_path):
    bad = corrupt(good, tmp_path, config=lambda c: c.update(r=999))  # under <home>/adapters
    runtime, record = _with_candidate(tiny_model, tmp_path, bad)
    with pytest.raises(EngineError, match="failed validation"):
        runtime.swap_ready("ada")
    assert runtime.engine.adapters() == [] and runtime.store.adapter(record.id).status == "rejected"
    assert runtime.store.events("ada", kinds=["adapter_refused"])[0]["data"]["adapter"] == record.name
    assert [i.status for i in runtime.store.items("ada")] == ["pending"]


def test_weights_edited_after_registration_with_a_valid_shape_are_refused(good, tiny_model, tmp_path):
    folder = corrupt(good, tmp_path)  # an intact copy under <home>/adapters
    runtime, record = _with_candidate(tiny_model, tmp_path, folder)
    assert record.weights_sha256 and len(record.weights_sha256) == 64

    def poison(weights):  # same names, shapes and dtype: only the values change
        key = next(k for k in sorted(weights) if "lora_B" in k)
        weights[key] = weights[key] + 0.5
        return weights

    weights = load_file(folder / "adapter_model.safetensors")
    save_file(poison(weights), folder / "adapter_model.safetensors")
    validate_adapter(folder, tmp_path / "adapters", tiny_model, 64)  # structurally still valid
    with pytest.raises(EngineError, match="SHA-256 mismatch"):
        runtime.swap_ready("ada")
    assert runtime.engine.adapters() == [] and runtime.store.adapter(record.id).status == "rejected"
    assert "tampered" in runtime.store.events("ada", kinds=["adapter_refused"])[0]["data"]["reason"]
