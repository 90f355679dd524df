"""Prompt Baking losses as pure functions.

Both compute the forward KL from the prompted teacher to the un-prompted student,

    KL(P_teacher || P_student) = sum_v p_T(v) * (log p_T(v) - log p_S(v)),

at every generated position, averaged over unmasked positions. The direction matters: forward
KL is mass-covering, so the student must put probability wherever the prompted teacher does.

``mask`` is a bool tensor that is True where a position counts. Masked positions contribute
nothing, and an all-masked batch gives 0 (the denominator is clamped to 1), never NaN.

Student logits are usually bf16 and (N, 49152) large. Normalising them with ``log_softmax`` in
autograd materialises several float32 copies of that matrix and dominated a CPU training step,
so both losses go through one fused autograd function that works on row chunks in float32 and
returns the analytic gradient ``scatter(ids, g) - softmax(z) * sum(g)``.
"""

from __future__ import annotations

import torch

_ROWS_PER_CHUNK = 256  # 256 x 49152 float32 = 50 MB of scratch at a time


def log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(x)) for x <= 0, stable at both ends (Maechler 2012)."""
    x = x.clamp(max=-1e-7)  # x == 0 means no remainder mass; keep the log finite
    return torch.where(x > -0.6931, torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


def _work_dtype(t: torch.Tensor) -> torch.dtype:
    return torch.float64 if t.dtype == torch.float64 else torch.float32


class _KLToStudent(torch.autograd.Function):
    """Per-row KL(teacher || softmax(z)); teacher given on `ids` (or the full vocab if None).

    With ``ids`` the teacher is collapsed to its k listed tokens plus a remainder bucket holding
    the rest of its mass; the student is collapsed the same way.

    Forward keeps the student softmax q in z's dtype (bf16 in training: the gradient flowing
    back into a bf16 LM head is bf16 anyway), so backward is one multiply and a scatter.
    """

    @staticmethod
    def forward(ctx, z, teacher_logprobs, ids):  # z: (N, V); teacher_logprobs: (N, k or V)
        wd = _work_dtype(z)
        n = z.shape[0]
        per_row = torch.empty(n, dtype=wd, device=z.device)
        q_all = torch.empty_like(z)
        g_all = torch.empty(teacher_logprobs.shape, dtype=wd, device=z.device)
        g_sum = torch.empty(n, 1, dtype=wd, device=z.device)
        for a in range(0, n, _ROWS_PER_CHUNK):
            b = min(a + _ROWS_PER_CHUNK, n)
            zc = z[a:b].to(wd, copy=True)  # scratch: modified in place below
            top = zc.amax(dim=-1, keepdim=True)
            q = zc.sub_(top).exp_()  # unnormalised softmax, in place over the fp32 copy
            total = q.sum(dim=-1, keepdim=True)
            lse = top + total.log()  # (n, 1)
            q.div_(total)
            t = teacher_logprobs[a:b].to(wd)
            p = t.exp()
            if ids is None:
                s = z[a:b].to(wd) - lse
                per_row[a:b] = (p * (t - s)).sum(-1)
                g = -p  # dL/ds = -p, and dL/dz = q * sum(p) - p = q - p
            else:
                s = z[a:b].gather(-1, ids[a:b]).to(wd) - lse
                t_rest = log1mexp(torch.logsumexp(t, dim=-1))
                s_rest = log1mexp(torch.logsumexp(s, dim=-1))
                per_row[a:b] = (p * (t - s)).sum(-1) + t_rest.exp() * (t_rest - s_rest)
                # dL/ds_i = -p_i + r_T * q_i / R_S   (R_S: student mass outside the top-k)
                g = -p + t_rest.exp()[:, None] * (s - s_rest[:, None]).exp()
            g_all[a:b] = g
            g_sum[a:b] = g.sum(-1, keepdim=True)
            q_all[a:b] = q
        ctx.save_for_backward(q_all, g_all, g_sum, ids)
        return per_row

    @staticmethod
    def backward(ctx, grad_rows):  # grad_rows: (N,)
        # dL/dz_j = scatter(g)_j - q_j * sum_i g_i, since ds_i/dz_j = [j == id_i] - q_j
        q, g, g_sum, ids = ctx.saved_tensors
        scale = grad_rows[:, None].to(g.dtype)
        grad_z = q * (-g_sum * scale).to(q.dtype)
        g = (g * scale).to(q.dtype)
        if ids is None:
            grad_z.add_(g)
        else:
            grad_z.scatter_add_(-1, ids, g)
        return grad_z, None, None


def _masked_mean(per_row: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    per_row = per_row.masked_fill(~mask, 0.0)
    return per_row.sum() / mask.sum().clamp_min(1)


def kl_full(
    teacher_logprobs: torch.Tensor, student_logits: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Full-vocabulary forward KL(teacher || student), mean over unmasked positions.

    Args:
        teacher_logprobs: (N, V) teacher log-probabilities (already normalised), any float dtype.
        student_logits: (N, V) raw student logits; normalised here in float32.
        mask: (N,) bool, True where the position counts.

    Returns:
        Scalar float32 tensor: mean over masked-in rows of sum_v p_T (log p_T - log p_S).
    """
    return _masked_mean(_KLToStudent.apply(student_logits, teacher_logprobs, None), mask)


def kl_topk(
    teacher_topk_logprobs: torch.Tensor,
    teacher_topk_ids: torch.Tensor,
    student_logits: torch.Tensor,
    mask: torch.Tensor,
) -> torch.Tensor:
    """Forward KL(teacher || student) over the teacher's top-k plus one remainder bucket.

    The vocabulary is collapsed to k + 1 outcomes: the teacher's k most likely tokens and
    "everything else". Both distributions are evaluated on that partition, so this is the exact
    KL of the coarsened distributions and never exceeds the full-vocabulary KL.

    Args:
        teacher_topk_logprobs: (N, k) the teacher's log-probabilities of its top-k tokens.
        teacher_topk_ids: (N, k) int64 token ids of those tokens (distinct within a row).
        student_logits: (N, V) raw student logits; normalised here in float32.
        mask: (N,) bool, True where the position counts.

    Returns:
        Scalar float32 tensor, mean over masked-in rows.
    """
    per_row = _KLToStudent.apply(student_logits, teacher_topk_logprobs, teacher_topk_ids)
    return _masked_mean(per_row, mask)


def per_position_kl_full(
    teacher_logprobs: torch.Tensor, student_logits: torch.Tensor
) -> torch.Tensor:
    """(N,) per-position full-vocabulary KL(teacher || student), for evaluation (no grad)."""
    with torch.no_grad():
        return _KLToStudent.apply(student_logits, teacher_logprobs, None)
