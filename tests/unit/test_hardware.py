"""Precision from measured capability, the cheap peak probe, and the cost model."""

import time

import pytest
import torch

from baking import hardware
from baking.cost import ModelShape, estimate_bake
from baking.hardware import choose_precision, matmul_flops, vllm_dtype


@pytest.fixture(autouse=True)
def fresh_probe(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the CPU rules, on any host
    hardware._auto_precision.cache_clear()
    yield
    hardware._auto_precision.cache_clear()


def test_an_explicit_dtype_is_honoured_without_probing(monkeypatch):
    monkeypatch.setattr(hardware, "matmul_flops", lambda *a, **k: pytest.fail("probed"))
    for dtype in ("bf16", "fp32"):
        precision = choose_precision(torch.device("cpu"), dtype)
        assert precision.dtype == dtype and "set in the config" in precision.reason


def test_auto_is_fp32_where_bf16_is_not_native(monkeypatch):
    monkeypatch.setattr(hardware, "native_bf16", lambda device: False)
    monkeypatch.setattr(hardware, "matmul_flops", lambda *a, **k: pytest.fail("probed"))
    precision = choose_precision(torch.device("cpu"))
    assert precision.dtype == "fp32" and "no native bf16" in precision.reason
    assert vllm_dtype() == ("float32", precision.reason)


@pytest.mark.parametrize("bf16_rate, expected", [(900e9, "bf16"), (110e9, "fp32"), (50e9, "fp32")])
def test_auto_takes_native_bf16_only_where_it_measures_faster(monkeypatch, bf16_rate, expected):
    monkeypatch.setattr(hardware, "native_bf16", lambda device: True)
    rates = {"fp32": 100e9, "bf16": bf16_rate}
    monkeypatch.setattr(hardware, "matmul_flops", lambda device, dtype, **k: rates[dtype])
    precision = choose_precision(torch.device("cpu"))
    assert precision.dtype == expected and precision.flops == rates
    assert vllm_dtype()[0] == {"bf16": "bfloat16", "fp32": "float32"}[expected]
    assert vllm_dtype("bfloat16") == ("bfloat16", "--dtype bfloat16 set in the config")


def test_the_peak_probe_is_cheap_and_in_the_asked_dtype():
    start = time.perf_counter()
    rate = matmul_flops(torch.device("cpu"), "fp32", size=512)
    assert rate > 1e8  # any CPU multiplies 512² fp32 matrices faster than 0.1 GFLOP/s
    assert time.perf_counter() - start < 5  # budget 0.4 s; loose for a loaded CI machine


def test_flops_count_the_head_only_where_it_runs():
    shape = ModelShape(body_params=1000, hidden=10, vocab=100)
    assert shape.forward_flops(tokens=5, head_positions=0) == 2 * 1000 * 5
    assert shape.forward_flops(tokens=5, head_positions=2) == 2 * 1000 * 5 + 2 * 10 * 100 * 2
    assert shape.train_flops(5, 2) == 2 * shape.forward_flops(5, 2)


def test_the_model_shape_leaves_out_embeddings(tiny_model):
    from baking.model import load_model

    model, _ = load_model(str(tiny_model))
    shape = ModelShape.of(model)
    embed = model.model.embed_tokens.weight.numel()
    total = sum(p.numel() for p in model.model.parameters())
    assert shape.body_params == total - embed
    assert (shape.hidden, shape.vocab) == (64, model.config.vocab_size)


def test_the_estimate_grows_with_the_work():
    shape = ModelShape(body_params=100_000_000, hidden=576, vocab=49152)
    kwargs = dict(dtype="fp32", flops_per_s=70e9, sampled_prompts=[40] * 100, max_new_tokens=40,
                  question_prompts=[], train_prompts=[30] * 96, conversations=[], batch_size=16,
                  eval_prompts=[30] * 24)
    two = estimate_bake(shape, epochs_or_steps=(2, None), **kwargs)
    four = estimate_bake(shape, epochs_or_steps=(4, None), **kwargs)
    assert four.phases["training"] == pytest.approx(2 * two.phases["training"])
    assert four.phases["sampling"] == two.phases["sampling"]
    assert "fp32, 70 GFLOP/s" in four.line()
    faster = estimate_bake(shape, epochs_or_steps=(4, None), **{**kwargs, "flops_per_s": 140e9})
    assert faster.seconds - faster.phases["fixed"] == pytest.approx((four.seconds - four.phases["fixed"]) / 2)
