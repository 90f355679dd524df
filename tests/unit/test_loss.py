import pytest
import torch
import torch.nn.functional as F

from baking.loss import kl_full, kl_topk, log1mexp

V = 5


def _logits(n: int, seed: int) -> torch.Tensor:
    return torch.randn(n, V, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_identical_distributions_give_zero():
    z = _logits(4, 0)
    t = F.log_softmax(z, -1)
    mask = torch.ones(4, dtype=torch.bool)
    assert float(kl_full(t, z, mask)) == pytest.approx(0.0, abs=1e-12)
    values, ids = t.topk(3, -1)
    assert float(kl_topk(values, ids, z, mask)) == pytest.approx(0.0, abs=1e-9)


def test_full_matches_f_kl_div_and_its_direction():
    z, t = _logits(6, 1), F.log_softmax(_logits(6, 2), -1)
    mask = torch.ones(6, dtype=torch.bool)
    # F.kl_div(input=log q_student, target=log p_teacher) = sum p_T (log p_T - log q_S)
    expected = F.kl_div(F.log_softmax(z, -1), t, log_target=True, reduction="sum") / 6
    torch.testing.assert_close(kl_full(t, z, mask), expected)
    reverse = F.kl_div(t, F.log_softmax(z, -1), log_target=True, reduction="sum") / 6
    assert not torch.isclose(kl_full(t, z, mask), reverse)


def test_full_gradient_is_exact():
    z = _logits(3, 3).requires_grad_(True)
    t = F.log_softmax(_logits(3, 4), -1)
    mask = torch.ones(3, dtype=torch.bool)
    assert torch.autograd.gradcheck(lambda x: kl_full(t, x, mask), (z,))


def test_topk_matches_hand_computed_coarsened_kl_and_gradient():
    z = _logits(4, 5).requires_grad_(True)
    t = F.log_softmax(_logits(4, 6), -1)
    values, ids = t.topk(2, -1)
    mask = torch.ones(4, dtype=torch.bool)

    def reference(x):
        s = F.log_softmax(x, -1)
        p_k, q_k = t.gather(-1, ids).exp(), s.gather(-1, ids).exp()
        p = torch.cat([p_k, 1 - p_k.sum(-1, keepdim=True)], -1)  # k tokens + remainder bucket
        q = torch.cat([q_k, 1 - q_k.sum(-1, keepdim=True)], -1)
        return (p * (p.log() - q.log())).sum(-1).mean()

    torch.testing.assert_close(kl_topk(values, ids, z, mask), reference(z))
    assert torch.autograd.gradcheck(lambda x: kl_topk(values, ids, x, mask), (z,))
    z_ref = z.detach().clone().requires_grad_(True)
    reference(z_ref).backward()
    kl_topk(values, ids, z, mask).backward()
    torch.testing.assert_close(z.grad, z_ref.grad)


def test_topk_never_exceeds_full_and_equals_it_at_k_equal_v_minus_one():
    z, t = _logits(8, 7), F.log_softmax(_logits(8, 8), -1)
    mask = torch.ones(8, dtype=torch.bool)
    full = kl_full(t, z, mask)
    for k in range(1, V):
        values, ids = t.topk(k, -1)
        assert kl_topk(values, ids, z, mask) <= full + 1e-12
    values, ids = t.topk(V - 1, -1)  # the remainder bucket is exactly the last token
    torch.testing.assert_close(kl_topk(values, ids, z, mask), full)


def test_masked_positions_count_for_nothing():
    z, t = _logits(4, 9), F.log_softmax(_logits(4, 10), -1)
    mask = torch.tensor([True, False, True, False])
    changed = z.clone()
    changed[~mask] += 100 * torch.randn_like(changed[~mask])
    torch.testing.assert_close(kl_full(t, z, mask), kl_full(t, changed, mask))
    torch.testing.assert_close(kl_full(t, z, mask), kl_full(t[mask], z[mask], mask[mask]))
    zg = z.clone().requires_grad_(True)
    kl_full(t, zg, mask).backward()
    assert torch.all(zg.grad[~mask] == 0)


def test_all_masked_batch_gives_zero_not_nan():
    z, t = _logits(3, 11).requires_grad_(True), F.log_softmax(_logits(3, 12), -1)
    mask = torch.zeros(3, dtype=torch.bool)
    values, ids = t.topk(2, -1)
    for loss in (kl_full(t, z, mask), kl_topk(values, ids, z, mask)):
        assert loss.item() == 0.0
        (grad,) = torch.autograd.grad(loss, z)
        assert torch.isfinite(grad).all()


def test_bf16_logits_in_float_out():
    z = _logits(4, 13).float()
    t = F.log_softmax(_logits(4, 14).float(), -1)
    mask = torch.ones(4, dtype=torch.bool)
    low = kl_full(t, z.bfloat16(), mask)
    assert low.dtype == torch.float32
    torch.testing.assert_close(low, kl_full(t, z.bfloat16().float(), mask))


def test_log1mexp_is_stable_at_both_ends():
    x = torch.tensor([-1e-6, -0.5, -1.0, -50.0], dtype=torch.float64)
    torch.testing.assert_close(log1mexp(x), torch.log(1 - torch.exp(x)), rtol=1e-6, atol=1e-12)
