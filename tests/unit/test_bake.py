"""bake() end to end on a tiny random Llama: the files, the record, the invariants."""

import json

import pytest
import torch
from safetensors.torch import load_file

from baking import AdapterVersion, BakeConfig, BakeError, PromptItem, bake
from baking.queries import ListQuerySource
from tests.unit.tiny_bake import tiny_bake

PERSONA = PromptItem(kind="persona", text="You always answer in capital letters.")
QUERIES = ListQuerySource([f"Tell me about the number {i}." for i in range(40)])


def tiny_config(model_dir, **overrides) -> BakeConfig:
    """The shared tiny budget (tests/unit/tiny_bake.py) with more inputs and training: these
    tests check that training moves the student toward the teacher."""
    more = dict(num_queries=8, trajectories_per_query=2, num_eval_queries=4, max_new_tokens=12, lr=1e-2, epochs=3,
                batch_size=4, queries_per_fact=2)
    return BakeConfig(model=str(model_dir), **tiny_bake(**{**more, **overrides}))


def test_bake_writes_a_servable_adapter_and_its_record(tiny_model, tmp_path):
    config = tiny_config(tiny_model, half_bake_fractions=[0.5])
    version = bake([PERSONA], tmp_path / "v1", config, queries=QUERIES, progress=False)

    adapter_config = json.loads((version.path / "adapter_config.json").read_text())
    assert adapter_config["r"] == 4 and not adapter_config.get("modules_to_save")
    assert adapter_config["bias"] == "none" and not adapter_config.get("use_dora")
    weights = load_file(version.path / "adapter_model.safetensors")
    assert any(".lora_B." in k for k in weights) and all("lora_" in k for k in weights)

    record = json.loads((version.path / "bake.json").read_text())
    assert record["items"] == [PERSONA.model_dump()] and record["parent"] is None
    assert record["config"]["lora_rank"] == 4 and record["seed"] == 0
    m = record["metrics"]
    for key in ("kl_base", "kl_baked", "fidelity", "wall_s", "sampling_s", "training_s",
                "train_tokens_per_s", "peak_share"):
        assert key in m
    assert m["fidelity"] == pytest.approx(1 - m["kl_baked"] / m["kl_base"])
    assert m["kl_baked"] < m["kl_base"]  # training moved the student towards the teacher
    assert (version.path / "half_bakes" / "f0.50" / "adapter_model.safetensors").is_file()
    assert AdapterVersion.load(version.path).metrics == version.metrics
    assert not list(tmp_path.glob(".v1.tmp-*"))


def test_bake_is_deterministic_given_the_seed(tiny_model, tmp_path):
    config = tiny_config(tiny_model, epochs=1)
    a = bake([PERSONA], tmp_path / "a", config, queries=QUERIES, progress=False)
    b = bake([PERSONA], tmp_path / "b", config, queries=QUERIES, progress=False)
    wa = load_file(a.path / "adapter_model.safetensors")
    wb = load_file(b.path / "adapter_model.safetensors")
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key])


def test_continuing_from_a_parent_starts_from_its_weights(tiny_model, tmp_path):
    config = tiny_config(tiny_model, epochs=1)
    parent = bake([PERSONA], tmp_path / "v1", config, queries=QUERIES, progress=False)
    news = PromptItem(kind="fact", text="The office moved to Pier 9.")
    before = PromptItem(kind="news", text="Port Alder opened the Glasswing Bridge.", id="7")
    child = bake([news], tmp_path / "v2", config, parent=parent.path,
                 replay=["Tell me about the number 3."], earlier=[before], progress=False)
    record = json.loads((child.path / "bake.json").read_text())
    assert record["parent"] == str(parent.path.resolve()) and record["replayed_items"] == ["7"]
    assert record["items"] == [news.model_dump()]  # an earlier item is re-taught, not re-recorded
    sources = child.metrics["inputs_by_source"]
    assert sources["replay-item"] == config.replay_per_fact * 2 and sources["replay"] == 1  # 2 facts
    assert child.metrics["num_trajectories"] > 0
    with pytest.raises(BakeError, match="only news and facts"):
        bake([news], tmp_path / "v4", config, earlier=[PERSONA], progress=False)
    with pytest.raises(BakeError, match="has rank 4, config asks 8"):
        bake([news], tmp_path / "v3", tiny_config(tiny_model, lora_rank=8), parent=parent.path,
             progress=False)


def test_a_crashed_bake_leaves_no_adapter_behind(tiny_model, tmp_path, monkeypatch):
    import baking.baker as bake_module

    def explode(*args, **kwargs):
        raise RuntimeError("simulated crash mid-training")

    monkeypatch.setattr(bake_module, "train", explode)
    with pytest.raises(RuntimeError, match="simulated crash"):
        bake([PERSONA], tmp_path / "v1", tiny_config(tiny_model), queries=QUERIES, progress=False)
    assert not (tmp_path / "v1").exists()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"items": []}, "nothing to bake"),
        ({"parent": "missing-adapter"}, "parent adapter missing-adapter not found"),
    ],
)
def test_bad_input_is_refused_before_any_work(tiny_model, tmp_path, kwargs, message):
    args = {"items": [PERSONA], "out": tmp_path / "v1", "config": tiny_config(tiny_model)}
    with pytest.raises(BakeError, match=message):
        bake(**{**args, **kwargs}, progress=False)


def test_non_empty_out_is_not_overwritten_by_default(tiny_model, tmp_path):
    (tmp_path / "v1").mkdir()
    (tmp_path / "v1" / "keep.txt").write_text("user data")
    with pytest.raises(BakeError, match="not empty"):
        bake([PERSONA], tmp_path / "v1", tiny_config(tiny_model), progress=False)
    assert (tmp_path / "v1" / "keep.txt").read_text() == "user data"


def test_shared_prefix_forward_matches_the_plain_one(tiny_model):
    from baking.baker import _with_lora
    from baking.model import load_model
    from baking.render import encode
    from baking.sampling import Sampled
    from baking.train import Example, batch_loss, collate, student_logits

    model, tokenizer = load_model(str(tiny_model))
    model = _with_lora(model, tiny_config(tiny_model), None)
    for name, p in model.named_parameters():  # non-zero LoRA so the adapter matters
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.1)
    examples = []
    for i, question in enumerate(["Hi", "What is two plus two?", "Tell me more, please."]):
        prompt = encode(tokenizer, [{"role": "user", "content": question}])
        tokens = torch.tensor([5 + i, 6, 7, tokenizer.eos_token_id])
        logprobs, ids = torch.log_softmax(torch.randn(4, 3), -1) - 0.5, torch.randint(3, 90, (4, 3))
        examples.append(Example(prompt, Sampled(tokens, logprobs, ids)))
    batch = collate(examples, tokenizer.pad_token_id)
    cpu = torch.device("cpu")
    shared = student_logits(model, batch, cpu, False, share_prefix=True)
    plain = student_logits(model, batch, cpu, False, share_prefix=False)
    torch.testing.assert_close(shared, plain, atol=1e-5, rtol=1e-4)

    grads = []
    for share in (True, False):
        model.zero_grad()
        logits = student_logits(model, batch, cpu, False, share_prefix=share)
        from baking.loss import kl_topk
        kl_topk(batch.teacher_logprobs, batch.teacher_ids, logits,
                torch.ones(len(logits), dtype=torch.bool)).backward()
        grads.append([p.grad.clone() for p in model.parameters() if p.requires_grad])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_fact_recall_is_the_share_of_the_prompts_gain_on_the_facts():
    from baking.baker import _fact_recall

    # log p(fact): prompted teacher, parent, baked, per probe.
    r = _fact_recall([-1.0, -2.0], [-5.0, -6.0], [-3.0, -4.0])
    assert r["fact_recall"] == 0.5 and r["fact_gain_teacher"] == 4.0 and r["num_facts"] == 2
    assert _fact_recall([-6.0], [-5.0], [-1.0])["fact_recall"] is None  # the prompt taught nothing
    assert _fact_recall([-4.95], [-5.0], [-1.0])["fact_recall"] is None  # a gain within noise
    assert _fact_recall([], [], [])["fact_recall"] is None


def test_a_news_bake_records_its_facts_recall(tiny_model, tmp_path):
    item = PromptItem(kind="news", text="Zentrix Robotics named Mara Okafor as its new CEO on Monday.")
    version = bake([item], tmp_path / "v1", BakeConfig(model=str(tiny_model), **tiny_bake()), progress=False)
    m = version.metrics
    assert m["num_facts"] == 2  # facts_per_item: Zentrix Robotics... and Mara Okafor
    assert m["fact_gain_teacher"] is not None and m["fact_gain_baked"] is not None
    from baking.baker import MIN_FACT_GAIN

    assert (m["fact_recall"] is None) == (m["fact_gain_teacher"] < MIN_FACT_GAIN)


@pytest.mark.parametrize("anchor", ["base", "parent"])
def test_a_continued_news_bake_anchors_its_locality_inputs_to_the_chosen_model(tiny_model, tmp_path,
                                                                               monkeypatch, anchor):
    import baking.baker as baker

    seen = []
    real = baker.sample

    def recording(model, prompts, **kwargs):
        off = any(getattr(m, "disable_adapters", False) for m in model.modules() if hasattr(m, "lora_A"))
        seen.append((len(prompts), off))
        return real(model, prompts, **kwargs)

    config = tiny_config(tiny_model, epochs=1, locality_per_item=3, locality_anchor=anchor)
    parent = bake([PromptItem(kind="news", text="Port Alder opened the Glasswing Bridge.")], tmp_path / "v1",
                  config, progress=False)
    assert parent.metrics["locality_anchor"] == "parent"  # a first bake has no parent to differ from
    monkeypatch.setattr(baker, "sample", recording)
    child = bake([PromptItem(kind="fact", text="The office moved to Pier 9.")], tmp_path / "v2", config,
                 parent=parent.path, progress=False)
    assert child.metrics["inputs_by_source"]["locality"] == 3
    assert child.metrics["locality_anchor"] == anchor
    # Base-anchored: the 3 locality inputs are sampled apart, with the parent adapter off.
    assert [n for n, off in seen if off] == ([3] if anchor == "base" else [])
    if anchor == "parent":
        return
    # Either way they are trained on: the same number of examples as a parent-anchored bake.
    same = bake([PromptItem(kind="fact", text="The office moved to Pier 9.")], tmp_path / "v3",
                config.model_copy(update={"locality_anchor": "parent"}), parent=parent.path, progress=False)
    assert same.metrics["num_trajectories"] == child.metrics["num_trajectories"]


def test_a_lineage_holding_a_persona_keeps_its_locality_inputs_on_the_parent(tiny_model, tmp_path):
    config = tiny_config(tiny_model, epochs=1, locality_per_item=2, locality_anchor="base")
    persona = bake([PERSONA], tmp_path / "v1", config, queries=QUERIES, progress=False)
    assert persona.metrics["locality_anchor"] is None  # a persona bake has no locality inputs
    news = bake([PromptItem(kind="news", text="Port Alder opened the Glasswing Bridge.")], tmp_path / "v2",
                config, parent=persona.path, progress=False)
    assert news.metrics["locality_anchor"] == "parent"  # base would wear the baked persona away
    later = bake([PromptItem(kind="fact", text="The office moved to Pier 9.")], tmp_path / "v3", config,
                 parent=news.path, progress=False)
    assert later.metrics["locality_anchor"] == "parent"  # the persona is further up the chain
