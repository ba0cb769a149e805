"""Public Comba operator: ``comba(q, k, v, p, g, beta, ...)`` with fla's argument order.

Backends
  * ``"triton"``: chunkwise Triton kernels (CUDA tensors; CPU tensors under ``TRITON_INTERPRET=1``).
  * ``"torch"``: chunkwise PyTorch (any device; what CPU users get).
  * ``"reference"``: the step-by-step recurrence (slow; for testing).
Default: Triton for CUDA tensors, PyTorch otherwise.  ``backend=`` or the environment variable
``COMBA_BACKEND`` forces one.
"""
from __future__ import annotations

import os

import torch

from .chunk_torch import CHUNK_SIZE, comba_chunk_torch, comba_chunk_torch_bidir
from .reference import comba_recurrent_reference

MAX_HEAD_DIM = 256
CPU_CHUNK_SIZE = 32
_BACKENDS = ("triton", "torch", "reference")
_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def check_sizes_and_variant(K: int, V: int, variant: str) -> None:
    """The head sizes and the variant the kernels support (ValueError naming what is wrong)."""
    if not (1 <= K <= MAX_HEAD_DIM) or not (1 <= V <= MAX_HEAD_DIM):
        raise ValueError(f"unsupported head size K={K}, V={V}: both must be in [1, {MAX_HEAD_DIM}]")
    if variant not in ("splr", "iplr"):
        raise ValueError(f"variant must be 'splr' or 'iplr', got {variant!r}")


def _check_inputs(q, k, v, p, g, beta, initial_state, variant):
    names = dict(q=q, k=k, v=v, p=p, g=g, beta=beta)
    for name, x in names.items():
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if x.dtype not in _FLOAT_DTYPES:
            raise ValueError(f"{name} has dtype {x.dtype}; expected a floating dtype "
                             f"(float16, bfloat16, float32 or float64)")
    for name in ("q", "k", "v", "p"):
        if names[name].dim() != 4:
            raise ValueError(f"{name} must have rank 4 ([B, T, H, D]), got shape {tuple(names[name].shape)}")
    for name in ("g", "beta"):
        if names[name].dim() != 3:
            raise ValueError(f"{name} must have rank 3 ([B, T, H]), got shape {tuple(names[name].shape)}")
    B, T, H, K = q.shape
    for name in ("k", "p"):
        if tuple(names[name].shape) != (B, T, H, K):
            raise ValueError(f"{name} has shape {tuple(names[name].shape)}, expected {(B, T, H, K)} like q")
    if tuple(v.shape[:3]) != (B, T, H):
        raise ValueError(f"v has shape {tuple(v.shape)}; its [B, T, H] must match q's {(B, T, H)}")
    V = v.shape[-1]
    for name in ("g", "beta"):
        if tuple(names[name].shape) != (B, T, H):
            raise ValueError(f"{name} has shape {tuple(names[name].shape)}, expected [B, T, H] = {(B, T, H)}")
    check_sizes_and_variant(K, V, variant)
    devices = {x.device for x in names.values()}
    if initial_state is not None:
        if not isinstance(initial_state, torch.Tensor) or initial_state.dtype not in _FLOAT_DTYPES:
            raise ValueError("initial_state must be a floating-point tensor")
        if tuple(initial_state.shape) != (B, H, K, V):
            raise ValueError(f"initial_state has shape {tuple(initial_state.shape)}, expected [B, H, K, V] = "
                             f"{(B, H, K, V)}")
        devices.add(initial_state.device)
    if len(devices) > 1:
        raise ValueError(f"all inputs must be on one device, got {sorted(str(d) for d in devices)}")
    return B, T, H, K, V


def _query_scale(q: torch.Tensor, scale: float | None) -> float:
    """The query scale as a float: the caller's, or K ** -0.5 (inputs already checked)."""
    return float(q.shape[-1] ** -0.5 if scale is None else scale)


def _torch_chunk_size(device: torch.device) -> int:
    # on the CPU, chunks of 32 beat 64 (fewer wasted flops in the triangular parts, same op count)
    return CPU_CHUNK_SIZE if device.type == "cpu" else CHUNK_SIZE


def _pick_backend(backend: str | None, device: torch.device) -> str:
    backend = backend or os.environ.get("COMBA_BACKEND") or None
    if backend is None:
        return "triton" if device.type == "cuda" else "torch"
    if backend not in _BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {_BACKENDS}")
    if backend == "triton" and device.type != "cuda" and os.environ.get("TRITON_INTERPRET", "0") != "1":
        raise ValueError("the Triton backend needs CUDA tensors (or TRITON_INTERPRET=1 for CPU tensors)")
    return backend


def comba(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    p: torch.Tensor,
    g: torch.Tensor,
    beta: torch.Tensor,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    *,
    variant: str = "splr",
    reverse: bool = False,
    backend: str | None = None,
):
    """Comba recurrence over ``[B, T, H, *]`` inputs.

    Args:
        q: queries ``[B, T, H, K]``, already output-corrected (``q - d k``); scaled by ``scale``.
        k: keys ``[B, T, H, K]`` (L2-normalised in the Comba layer).
        v: values ``[B, T, H, V]``.
        p: feedback keys ``[B, T, H, K]`` (``b * k`` in the Comba layer).
        g: log forget gate ``[B, T, H]`` (``log alpha <= 0``).
        beta: input gate ``[B, T, H]``.
        scale: query scale, default ``K ** -0.5``.
        initial_state: ``[B, H, K, V]`` state before the first scanned token (float32 recommended).
        output_final_state: also return the state after the last scanned token (float32).
        variant: ``"splr"`` (default) or ``"iplr"``.
        reverse: scan from the last token to the first (the state then flows right to left).
        backend: ``"triton"``, ``"torch"`` or ``"reference"``; default by device.

    Returns:
        ``(o, final_state)``: ``o`` like ``v``; ``final_state`` ``[B, H, K, V]`` float32 or ``None``.
    """
    B, T, H, K, V = _check_inputs(q, k, v, p, g, beta, initial_state, variant)
    scale = _query_scale(q, scale)
    be = _pick_backend(backend, q.device)
    if be == "reference":
        o, ht = comba_recurrent_reference(q, k, v, p, g, beta, scale, initial_state, output_final_state,
                                          variant=variant, reverse=reverse, dtype=torch.float64)
        return o.to(v.dtype), (ht.float() if ht is not None else None)
    if T == 0:
        o = v.new_zeros(B, 0, H, V)
        if not output_final_state:
            return o, None
        ht = initial_state.float() if initial_state is not None else v.new_zeros(B, H, K, V, dtype=torch.float32)
        return o, ht
    if be == "torch":
        return comba_chunk_torch(q, k, v, p, g, beta, scale, initial_state, output_final_state,
                                 variant=variant, reverse=reverse, chunk_size=_torch_chunk_size(q.device))
    from .function import comba_triton
    return comba_triton(q, k, v, p, g, beta, scale, initial_state, output_final_state,
                        iplr=variant == "iplr", reverse=reverse)


_MERGES = ("sum", "mean", "none", "stack")


def _bidir_backend(q, k, v, p, g, beta, variant, backend) -> str | None:
    """Checks the inputs once; the backend both directions run on, or None for an empty sequence (which
    takes the single-direction calls, whose empty-input handling it is)."""
    _check_inputs(q, k, v, p, g, beta, None, variant)
    return _pick_backend(backend, q.device) if q.shape[1] > 0 else None


def _fused_forward_applies(be: str | None, K: int, V: int, xs) -> bool:
    """The one-launch bidirectional forward: Triton backend, no gradient needed, state small enough."""
    if be != "triton":
        return False
    from . import triton_chunk
    if not triton_chunk.FUSED_FWD:
        return False
    if torch.is_grad_enabled() and any(x.requires_grad for x in xs):
        return False
    return triton_chunk.fused_bidir_supported(K, V)


def _one_launch_applies(be: str | None) -> bool:
    """Both directions in the same launches of the chunk pipeline (COMBA_BIDIR_ONE_LAUNCH, the default)."""
    if be != "triton":
        return False
    from . import triton_chunk
    return triton_chunk.BIDIR_ONE_LAUNCH


def _shared_do() -> bool:
    """The summed merges take the operator's own sum and one dO for both directions (COMBA_SHARED_DO)."""
    from . import triton_chunk
    return triton_chunk.SHARED_DO


def comba_bidirectional(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    p: torch.Tensor,
    g: torch.Tensor,
    beta: torch.Tensor,
    scale: float | None = None,
    *,
    variant: str = "splr",
    merge: str = "sum",
    backend: str | None = None,
):
    """Both scan directions of the Comba recurrence over the same inputs (no initial states), merged.

    The forward scan runs from the first token to the last, the reverse scan from the last to the first,
    each reading the caller's tensors in place (nothing is flipped or copied). ``merge="sum"`` returns
    ``o_fwd + o_rev``, ``"mean"`` their average, ``"none"`` the pair ``(o_fwd, o_rev)`` and ``"stack"`` one
    [2, B, T, H, V] tensor, the forward scan's output first (what the one-launch path makes). Arguments as
    :func:`comba`. On the Triton backend both directions run in the same kernel launches (or, with
    ``COMBA_BIDIR_ONE_LAUNCH=0``, as two calls of the single-direction kernels; docs/KERNELS.md); with
    ``COMBA_SHARED_DO=1`` the "sum" and "mean" merges are summed by the operator, whose backward reads one dO for
    both directions.
    """
    if merge not in _MERGES:
        raise ValueError(f"merge must be one of {_MERGES}, got {merge!r}")
    # once here rather than in each direction's call (v is usually a slice of a fused qkv projection)
    q, k, v, p, g, beta = (x.contiguous() for x in (q, k, v, p, g, beta))
    be = _bidir_backend(q, k, v, p, g, beta, variant, backend)
    if merge in ("sum", "mean") and _fused_forward_applies(be, q.shape[-1], v.shape[-1], (q, k, v, p, g, beta)):
        from .function import bidir_fused_fwd
        return bidir_fused_fwd(q, k, v, p, g, beta, _query_scale(q, scale), variant == "iplr", merge == "mean")
    if _one_launch_applies(be) and merge in ("sum", "mean") and _shared_do():
        from .function import comba_triton_both_sum
        o = comba_triton_both_sum(q, k, v, p, g, beta, _query_scale(q, scale), variant == "iplr")
        return o * 0.5 if merge == "mean" else o
    if _one_launch_applies(be):
        from .function import comba_triton_both
        o2 = comba_triton_both(q, k, v, p, g, beta, _query_scale(q, scale), variant == "iplr")
        if merge == "stack":
            return o2
        o_f, o_r = o2.unbind(0)
    elif be == "torch" and merge in ("sum", "mean"):  # the sum accumulated by the output products in place
        o = comba_chunk_torch_bidir(q, k, v, p, g, beta, _query_scale(q, scale), variant,
                                    _torch_chunk_size(q.device), merge_sum=True)
        return o * 0.5 if merge == "mean" else o
    elif be == "torch":
        o_f, o_r = comba_chunk_torch_bidir(q, k, v, p, g, beta, _query_scale(q, scale), variant,
                                           _torch_chunk_size(q.device))
    else:
        o_f, _ = comba(q, k, v, p, g, beta, scale, variant=variant, backend=backend)
        o_r, _ = comba(q, k, v, p, g, beta, scale, variant=variant, reverse=True, backend=backend)
    if merge == "stack":
        return torch.stack((o_f, o_r))
    if merge == "none":
        return o_f, o_r
    o = o_f + o_r
    return o * 0.5 if merge == "mean" else o
