"""autograd.Function tying the Triton forward and backward kernels together."""
from __future__ import annotations

import torch

from .triton_chunk import comba_bwd_triton, comba_fwd_triton


class CombaTritonFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, p, g, beta, scale, initial_state, output_final_state, iplr, reverse):
        q, k, v, p, g, beta = (x.contiguous() for x in (q, k, v, p, g, beta))
        h0 = initial_state.float().contiguous() if initial_state is not None else None
        o, ht, saved = comba_fwd_triton(q, k, v, p, g, beta, scale, h0, output_final_state, iplr, reverse)
        ctx.save_for_backward(q, k, v, p, g, beta, *saved)
        ctx.scale, ctx.iplr, ctx.reverse = scale, iplr, reverse
        ctx.h0_dtype = initial_state.dtype if initial_state is not None else None
        return o, ht

    @staticmethod
    def backward(ctx, do, dht):
        q, k, v, p, g, beta, *saved = ctx.saved_tensors
        do = do.contiguous()
        dht = dht.float().contiguous() if dht is not None else None
        need_dh0 = ctx.h0_dtype is not None and ctx.needs_input_grad[7]
        dq, dk, dv, dp, dg, dbeta, dh0 = comba_bwd_triton(
            q, k, v, p, g, beta, ctx.scale, saved, do, dht, need_dh0, ctx.iplr, ctx.reverse)
        if dh0 is not None:
            dh0 = dh0.to(ctx.h0_dtype)
        return dq, dk, dv, dp, dg, dbeta, None, dh0, None, None, None


def comba_triton(q, k, v, p, g, beta, scale, initial_state, output_final_state, iplr, reverse):
    return CombaTritonFunction.apply(q, k, v, p, g, beta, scale, initial_state, output_final_state, iplr, reverse)
