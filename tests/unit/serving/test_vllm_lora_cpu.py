"""The grouped LoRA products equal vLLM-CPU's own torch ops on random inputs: every op, one
and several adapter slots, slot -1, 3- and 4-dimensional stacks, add or overwrite."""

import pytest
import torch

from agent import vllm_lora_cpu as grouped

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
