"""The Triton forward and backward as torch.library custom ops with a registered autograd formula.

Registering them (rather than calling the kernels from a plain autograd.Function) lets torch.compile and
CUDA-graph capture treat the operator as one opaque node: no graph break, no tracing into the launcher.
"""
from __future__ import annotations

import torch
from torch import Tensor

from . import triton_chunk
from .triton_chunk import (
    BOTH,
    _directions,
    comba_bidir_fwd_fused,
    comba_bwd_triton,
    comba_fwd_triton,
    empty_work_buffers,
)


def _empty(like: Tensor) -> Tensor:
    return like.new_empty(0, dtype=torch.float32)


@torch.library.custom_op("comba_vision::chunk_fwd", mutates_args=())
def chunk_fwd(q: Tensor, k: Tensor, v: Tensor, p: Tensor, g: Tensor, beta: Tensor, scale: float,
              initial_state: Tensor | None, output_final_state: bool, iplr: bool, reverse: int
              ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """reverse: 0 forward scan, 1 reverse scan, 2 both in the same launches (o is then [2, B, T, H, V])."""
    # compiled graphs may hand a custom op inputs in other strides than eager code would: the kernels
    # index densely, so make them contiguous here (a no-op for contiguous tensors)
    q, k, v, p, g, beta = (x.contiguous() for x in (q, k, v, p, g, beta))
    initial_state = initial_state.contiguous() if initial_state is not None else None
    o, ht, (M, W, U, h) = comba_fwd_triton(q, k, v, p, g, beta, scale, initial_state, output_final_state,
                                           iplr, reverse)
    return o, (ht if ht is not None else _empty(q)), M, W, U, h


@chunk_fwd.register_fake
def _(q, k, v, p, g, beta, scale, initial_state, output_final_state, iplr, reverse):
    B, T, H, K = q.shape
    V = v.shape[-1]
    nd = _directions(reverse)
    ht = q.new_empty(B, H, K, V, dtype=torch.float32) if output_final_state else _empty(q)
    o = v.new_empty(2, *v.shape) if nd == 2 else v.new_empty(v.shape)
    return (o, ht, *empty_work_buffers(B, T, H, K, V, nd, q.dtype, q.device))


@torch.library.custom_op("comba_vision::chunk_buffers", mutates_args=())
def chunk_buffers(q: Tensor, k: Tensor, v: Tensor, p: Tensor, g: Tensor, beta: Tensor,
                  initial_state: Tensor | None, iplr: bool, reverse: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The forward's work buffers M, W, U, h again (no output): the backward's recomputation."""
    q, k, v, p, g, beta = (x.contiguous() for x in (q, k, v, p, g, beta))
    _, _, bufs = comba_fwd_triton(q, k, v, p, g, beta, 1.0, initial_state, False, iplr, reverse, need_output=False)
    return bufs


@chunk_buffers.register_fake
def _(q, k, v, p, g, beta, initial_state, iplr, reverse):
    return empty_work_buffers(*q.shape, v.shape[-1], _directions(reverse), q.dtype, q.device)


@torch.library.custom_op("comba_vision::chunk_bwd", mutates_args=())
def chunk_bwd(q: Tensor, k: Tensor, v: Tensor, p: Tensor, g: Tensor, beta: Tensor, M: Tensor, W: Tensor,
              U: Tensor, h: Tensor, do: Tensor, dht: Tensor | None, scale: float, need_dh0: bool, iplr: bool,
              reverse: int, sum_directions: bool = True
              ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """sum_directions=False with reverse == BOTH: each input's gradient per direction, [2, *input.shape]."""
    q, k, v, p, g, beta, do = (x.contiguous() for x in (q, k, v, p, g, beta, do))
    dht = dht.contiguous() if dht is not None else None
    grads = comba_bwd_triton(q, k, v, p, g, beta, scale, (M, W, U, h), do, dht, need_dh0, iplr, reverse,
                             sum_directions)
    dh0 = grads[-1]
    return (*grads[:-1], dh0 if dh0 is not None else _empty(q))


@chunk_bwd.register_fake
def _(q, k, v, p, g, beta, M, W, U, h, do, dht, scale, need_dh0, iplr, reverse, sum_directions=True):
    B, T, H, K = q.shape
    dh0 = q.new_empty(B, H, K, v.shape[-1], dtype=torch.float32) if need_dh0 else _empty(q)
    # both directions unsummed: [2, ...], dg and dbeta float32; else each input's shape and dtype
    lead = (2,) if reverse == BOTH and not sum_directions else ()
    gdt, bdt = (torch.float32, torch.float32) if lead else (g.dtype, beta.dtype)
    return (*(x.new_empty(*lead, *x.shape) for x in (q, k, v, p)), g.new_empty(*lead, *g.shape, dtype=gdt),
            beta.new_empty(*lead, *beta.shape, dtype=bdt), dh0)


def _setup_context(ctx, inputs, output):
    q, k, v, p, g, beta, scale, initial_state, output_final_state, iplr, reverse = inputs
    _, _, M, W, U, h = output
    # the work buffers are outputs only so that the backward gets them: no gradient flows into them, and
    # an output that took no part in the loss gets None rather than a tensor of zeros (by default autograd
    # fills one for each: for M, W, U, h that was about 150 MB of float32 zeros per Comba-T layer and step)
    ctx.mark_non_differentiable(M, W, U, h)
    ctx.set_materialize_grads(False)
    # RECOMPUTE_BUFFERS: keep the initial state instead of M, W, U, h (rebuilt in the backward)
    ctx.recompute = triton_chunk.RECOMPUTE_BUFFERS
    ctx.save_for_backward(q, k, v, p, g, beta, *((initial_state,) if ctx.recompute else (M, W, U, h)))
    ctx.scale, ctx.iplr, ctx.reverse = scale, iplr, reverse
    ctx.h0_dtype = initial_state.dtype if initial_state is not None else None


def _backward(ctx, do, dht, dM, dW, dU, dh):
    if ctx.recompute:
        q, k, v, p, g, beta, h0 = ctx.saved_tensors
        M, W, U, h = chunk_buffers(q, k, v, p, g, beta, h0, ctx.iplr, ctx.reverse)
    else:
        q, k, v, p, g, beta, M, W, U, h = ctx.saved_tensors
    if dht is not None and dht.numel() == 0:
        dht = None
    if do is None:  # only the final state took part in the loss (o is v-shaped, [2, *v.shape] for BOTH)
        do = v.new_zeros((2, *v.shape) if ctx.reverse == BOTH else v.shape)
    need_dh0 = ctx.h0_dtype is not None and ctx.needs_input_grad[7]
    dq, dk, dv, dp, dg, dbeta, dh0 = chunk_bwd(
        q, k, v, p, g, beta, M, W, U, h, do.contiguous(),
        dht.float().contiguous() if dht is not None else None, ctx.scale, need_dh0, ctx.iplr, ctx.reverse)
    dh0 = dh0.to(ctx.h0_dtype) if need_dh0 else None
    return dq, dk, dv, dp, dg, dbeta, None, dh0, None, None, None


chunk_fwd.register_autograd(_backward, setup_context=_setup_context)


def comba_triton(q, k, v, p, g, beta, scale, initial_state, output_final_state, iplr, reverse):
    q, k, v, p, g, beta = (x.contiguous() for x in (q, k, v, p, g, beta))
    # the cast is differentiable, so dh0 reaches the caller in the caller's dtype
    h0 = initial_state.float().contiguous() if initial_state is not None else None
    o, ht, *_ = chunk_fwd(q, k, v, p, g, beta, scale, h0, output_final_state, iplr, int(reverse))
    return o, (ht if output_final_state else None)


def comba_triton_both(q, k, v, p, g, beta, scale, iplr):
    """Both scan directions in the same kernel launches (no initial or final state): [2, B, T, H, V], the
    forward scan's output first. Inputs must be contiguous."""
    return chunk_fwd(q, k, v, p, g, beta, scale, None, False, iplr, BOTH)[0]


@torch.library.custom_op("comba_vision::chunk_fwd_sum", mutates_args=())
def chunk_fwd_sum(q: Tensor, k: Tensor, v: Tensor, p: Tensor, g: Tensor, beta: Tensor, scale: float, iplr: bool
                  ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Both scan directions in the same launches, their outputs summed here: (o [B, T, H, V], M, W, U, h). Its
    gradient is one dO for both directions, which the backward kernels read in place (SHARED_DO)."""
    q, k, v, p, g, beta = (x.contiguous() for x in (q, k, v, p, g, beta))
    o, _, bufs = comba_fwd_triton(q, k, v, p, g, beta, scale, None, False, iplr, BOTH, sum_out=True)
    return (o, *bufs)


@chunk_fwd_sum.register_fake
def _(q, k, v, p, g, beta, scale, iplr):
    return (v.new_empty(v.shape), *empty_work_buffers(*q.shape, v.shape[-1], 2, q.dtype, q.device))


def _setup_context_sum(ctx, inputs, output):
    q, k, v, p, g, beta, scale, iplr = inputs
    o, M, W, U, h = output
    _setup_context(ctx, (q, k, v, p, g, beta, scale, None, False, iplr, BOTH), (o, None, M, W, U, h))


def _backward_sum(ctx, do, dM, dW, dU, dh):
    # do is [B, T, H, V] (None: _backward takes zeros): comba_bwd_triton reads it for both directions. _backward
    # looks at ctx.needs_input_grad[7] (chunk_fwd's initial state; iplr here) only when ctx.h0_dtype is set, which it
    # is not (no initial state)
    dq, dk, dv, dp, dg, dbeta, *_ = _backward(ctx, do, None, dM, dW, dU, dh)
    return dq, dk, dv, dp, dg, dbeta, None, None


chunk_fwd_sum.register_autograd(_backward_sum, setup_context=_setup_context_sum)


def comba_triton_both_sum(q, k, v, p, g, beta, scale, iplr):
    """Both scan directions in the same kernel launches, their outputs summed ([B, T, H, V]); the backward reads one
    dO for both (COMBA_SHARED_DO). Inputs must be contiguous."""
    return chunk_fwd_sum(q, k, v, p, g, beta, scale, iplr)[0]


@torch.library.custom_op("comba_vision::bidir_fused_fwd", mutates_args=())
def bidir_fused_fwd(q: Tensor, k: Tensor, v: Tensor, p: Tensor, g: Tensor, beta: Tensor, scale: float,
                    iplr: bool, mean: bool) -> Tensor:
    """Both scan directions, merged, forward only (no autograd formula: used when no gradient is needed)."""
    q, k, v, p, g, beta = (x.contiguous() for x in (q, k, v, p, g, beta))
    return comba_bidir_fwd_fused(q, k, v, p, g, beta, scale, iplr, mean)


@bidir_fused_fwd.register_fake
def _(q, k, v, p, g, beta, scale, iplr, mean):
    return v.new_empty(v.shape)
