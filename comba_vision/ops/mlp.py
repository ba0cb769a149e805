"""An MLP's two Linear layers and the exact GELU between them as one autograd node that keeps only its input.

``mlp(x, w1, b1, w2, b2)`` is ``F.linear(F.gelu(F.linear(x, w1, b1)), w2, b2)``. PyTorch's layers keep the hidden
activation h = x w1^T + b1 (or, through GELU, both h and gelu(h)) for the backward: for Comba-T that is 1536 bytes a
token and block in bf16, the largest single tensor a block keeps. This node keeps x (which the norm before it keeps
anyway where it is folded in: ops.layer_norm's fold) and forms h again in the backward with the same GEMM as the
forward, about 1.3% of a Comba-T training step at 1024px on the H200 for 0.6 GB less at batch 8.

Backward: h = x w1^T + b1 again; da = dy w2; one Triton pass (ops.linear._gelu_bwd_inplace_op) turns da into
dh = da gelu'(h) and h into gelu(h) in place; dw2 = dy^T gelu(h); dx = dh w1; dw1 = dh^T x; the biases from the
column-sum kernel. fold (a LayerNorm's weight and bias folded into fc1, as ops.linear.linear's fold): fc1 runs with
w1 diag(w_n) and w1 b_n + b1, and the norm's weight and bias get their gradients here. Under create_graph the
backward runs the forward again through PyTorch ops and differentiates that.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .linear import _check_fold, _folded, _gelu_bwd_inplace_op, _stack, piece_grads


class _MLP(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, w1c: Tensor, b1c: Tensor | None, w2c: Tensor, b2c: Tensor | None, fold: bool,
                w1: Tensor, b1: Tensor | None, w2: Tensor, b2: Tensor | None, nw: Tensor | None,
                nb: Tensor | None) -> Tensor:
        ctx.save_for_backward(x, w1c, b1c, w2c, w1, b1, w2, b2, nw, nb)
        ctx.fold = fold
        return F.linear(F.gelu(F.linear(x, w1c, b1c)), w2c, b2c)

    @staticmethod
    def backward(ctx, dy: Tensor):
        x, w1c, b1c, w2c, w1, b1, w2, b2, nw, nb = ctx.saved_tensors
        params = (w1, b1, w2, b2, nw, nb)
        wanted = [ctx.needs_input_grad[0], *ctx.needs_input_grad[6:12]]
        if torch.is_grad_enabled():  # create_graph: the forward again through differentiable ops
            g = _double_backward(ctx, x, dy, w1c.dtype, params, wanted)
            return (g[0], None, None, None, None, None, *g[1:])
        dy2 = dy.reshape(-1, dy.shape[-1])
        x2 = x.reshape(-1, x.shape[-1])
        a = F.linear(x2, w1c, b1c)  # h, the forward's GEMM again
        dh = dy2 @ w2c
        _gelu_bwd_inplace_op(a, dh)  # dh: h's gradient, a: gelu(h), both in place (no two more [rows, hidden])
        g2 = piece_grads(dy2, a, *_layer(w2, b2, wanted[3:5]))
        del a
        dx = (dh @ w1c).view(*dy.shape[:-1], w1c.shape[1]) if wanted[0] else None
        fold = (nw, nb) if ctx.fold else None
        pieces, n_w, grads = _layer(w1, b1, wanted[1:3])
        g1 = piece_grads(dh, x2, pieces, n_w, grads + (wanted[5:] if fold else []), fold=fold)
        (dw1, db1, *dnorm), (dw2, db2) = _unpieced(g1, b1), _unpieced(g2, b2)
        return (dx, None, None, None, None, None, dw1, db1, dw2, db2, *(dnorm or (None, None)))


def _layer(w: Tensor, b: Tensor | None, wanted: list[bool]) -> tuple[list, int, list[bool]]:
    """A Linear layer's weight and (if any) bias as ops.linear.piece_grads takes them: (pieces, 1, grads)."""
    return ([w] if b is None else [w, b]), 1, (wanted[:1] if b is None else wanted[:2])


def _unpieced(grads: list, b: Tensor | None) -> list:
    """piece_grads' results for _layer's pieces as [weight's, bias's (None without a bias), then any fold's two]."""
    return grads[:1] + ([None] if b is None else []) + grads[1:]


def _double_backward(ctx, x: Tensor, dy: Tensor, dtype: torch.dtype, params: tuple, wanted: list) -> list:
    """(dx, and the six parameters' gradients) by differentiating the forward run again through PyTorch ops."""
    w1, b1, w2, b2, nw, nb = params
    if ctx.fold:
        w1e = w1 * nw
        b1e = w1 @ nb + (b1 if b1 is not None else 0)
    else:
        w1e, b1e = w1, b1
    cast = (lambda t: None if t is None else t.to(dtype))
    y = F.linear(F.gelu(F.linear(x, cast(w1e), cast(b1e))), cast(w2), cast(b2))
    inputs = [t for t, want in zip((x, *params), wanted, strict=True) if want]
    grads = iter(torch.autograd.grad(y, inputs, dy, create_graph=True, allow_unused=True))
    return [next(grads) if want else None for want in wanted]


def mlp(x: Tensor, w1: Tensor, b1: Tensor | None, w2: Tensor, b2: Tensor | None = None,
        fold: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """F.linear(F.gelu(F.linear(x, w1, b1)), w2, b2) keeping only x for the backward (module docstring). Under
    autocast x and the parameters are cast to the autocast dtype (the parameters once per ops.linear.cast_once
    context that holds them), and the parameters' gradients come back in their own dtype. fold (w_n, b_n): x is a
    LayerNorm's x^ and fc1 takes that norm's weight and bias folded in (ops.linear.linear's fold)."""
    dev = x.device.type
    if torch.is_autocast_enabled(dev):
        dt = torch.get_autocast_dtype(dev)
        x = x.to(dt)
    else:
        dt = w1.dtype
    if fold is not None:
        nw, nb = _check_fold(fold, x, (w1,), None)
        w1c, b1c = _folded((w1,), None if b1 is None else (b1,), nw, nb, dt)
    else:
        nw = nb = None
        w1c = _stack((w1,), dt)
        b1c = _stack((b1,), dt) if b1 is not None else None
    w2c = _stack((w2,), dt)
    b2c = _stack((b2,), dt) if b2 is not None else None
    with torch.autocast(dev, enabled=False):
        return _MLP.apply(x, w1c, b1c, w2c, b2c, fold is not None, w1, b1, w2, b2, nw, nb)
