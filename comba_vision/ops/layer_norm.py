"""LayerNorm over the last dimension as one Triton kernel forward and one backward (plus a small sum).

Why: in a profile of a CUDA-graphed Comba-T training step on the H200 (224px, batch 128, session 8) PyTorch's
LayerNorm took 4.2 of 26.3 device-ms for the blocks' 24 norms over [25216, 192] rows: the forward 1.1 ms,
the input gradient 0.6 ms, and the weight and bias gradients (``GammaBetaBackward``) 2.5 ms. Under bf16
autocast it also returns float32, which the next Linear then copies to bf16.

Here, per row x of width D (arithmetic in float32):

    y  = (x - mean) * rstd * w + b,       rstd = 1 / sqrt(var + eps)   (biased variance, as F.layer_norm)
    dx = rstd * (g - mean(g) - x^ * mean(g * x^)),   g = dy * w,   x^ = (x - mean) * rstd
    dw = sum_rows dy * x^,   db = sum_rows dy

The forward writes y once in ``out_dtype`` (the autocast dtype under autocast, else x's), keeping nothing
but x for the backward, which recomputes mean and rstd. Each backward program walks ``ITERS`` blocks of rows
and keeps its share of dw and db in registers; one ``sum(0)`` over the programs' rows finishes both.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from .block_kernels import applies

_TILE = 4096  # elements of one [rows, BD] tile a program holds
_ITERS = 2    # row blocks per backward program (8 left 196 programs at Comba-T's 25088 rows: 56 us; H200)


@triton.jit
def _ln_rows(X, W, rows, D, BN: tl.constexpr, BD: tl.constexpr, NROWS, EPS: tl.constexpr):
    """(x^, rstd, w, mask, column offsets) of the rows."""
    cols = tl.arange(0, BD)
    m = (rows[:, None] < NROWS) & (cols[None, :] < D)
    x = tl.load(X + rows[:, None] * D + cols[None, :], mask=m, other=0.0).to(tl.float32)
    mean = tl.sum(x, axis=1) / D
    xc = tl.where(m, x - mean[:, None], 0.0)
    rstd = 1.0 / tl.sqrt(tl.sum(xc * xc, axis=1) / D + EPS)
    w = tl.load(W + cols, mask=cols < D, other=0.0).to(tl.float32)
    return xc * rstd[:, None], rstd, w, m, cols


@triton.jit
def _ln_fwd(X, W, B, Y, NROWS, D, BN: tl.constexpr, BD: tl.constexpr, EPS: tl.constexpr):
    rows = tl.program_id(0) * BN + tl.arange(0, BN)
    xh, _, w, m, cols = _ln_rows(X, W, rows, D, BN, BD, NROWS, EPS)
    b = tl.load(B + cols, mask=cols < D, other=0.0).to(tl.float32)
    tl.store(Y + rows[:, None] * D + cols[None, :], (xh * w[None, :] + b[None, :]).to(Y.dtype.element_ty), mask=m)


@triton.jit
def _ln_bwd(X, W, DY, DX, DWBP, NROWS, D, BN: tl.constexpr, BD: tl.constexpr, ITERS: tl.constexpr,
            EPS: tl.constexpr):
    pid = tl.program_id(0)
    dw = tl.zeros([BD], dtype=tl.float32)
    db = tl.zeros([BD], dtype=tl.float32)
    for it in range(ITERS):
        rows = (pid * ITERS + it) * BN + tl.arange(0, BN)
        xh, rstd, w, m, cols = _ln_rows(X, W, rows, D, BN, BD, NROWS, EPS)
        offs = rows[:, None] * D + cols[None, :]
        dy = tl.load(DY + offs, mask=m, other=0.0).to(tl.float32)
        g = dy * w[None, :]
        c1 = tl.sum(g, axis=1) / D
        c2 = tl.sum(g * xh, axis=1) / D
        dx = rstd[:, None] * (g - c1[:, None] - xh * c2[:, None])
        tl.store(DX + offs, dx.to(DX.dtype.element_ty), mask=m)
        dw += tl.sum(dy * xh, axis=0)
        db += tl.sum(dy, axis=0)
    cols = tl.arange(0, BD)
    tl.store(DWBP + pid * 2 * D + cols, dw, mask=cols < D)  # this program's row of the [programs, 2, D] partials
    tl.store(DWBP + pid * 2 * D + D + cols, db, mask=cols < D)


def _meta(D: int):
    BD = triton.next_power_of_2(D)
    return dict(BN=max(1, _TILE // BD), BD=BD, num_warps=4 if BD <= 1024 else 8)


def _check_offsets(n: int) -> None:
    if n >= 2**31:
        raise ValueError(f"layer_norm: {n} elements are more than the kernels' 32-bit offsets reach (2**31); "
                         f"set COMBA_FUSED_NORM=0")


@torch.library.custom_op("comba_vision::layer_norm", mutates_args=())
def _ln_op(x: Tensor, weight: Tensor, bias: Tensor, eps: float, out_dtype: torch.dtype) -> Tensor:
    D = x.shape[-1]
    x2 = x.reshape(-1, D).contiguous()
    y = torch.empty(x2.shape, dtype=out_dtype, device=x.device)
    meta = _meta(D)
    _ln_fwd[(triton.cdiv(x2.shape[0], meta["BN"]),)](x2, weight, bias, y, x2.shape[0], D, EPS=eps, **meta)
    return y.view(x.shape)


@_ln_op.register_fake
def _(x, weight, bias, eps, out_dtype):
    return x.new_empty(x.shape, dtype=out_dtype)


@torch.library.custom_op("comba_vision::layer_norm_bwd", mutates_args=())
def _ln_bwd_op(x: Tensor, weight: Tensor, dy: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """(dx in x's dtype, [dw; db] as one [2, D] float32 tensor)."""
    D = x.shape[-1]
    x2, dy2 = x.reshape(-1, D).contiguous(), dy.reshape(-1, D).contiguous()
    meta = _meta(D)
    programs = triton.cdiv(x2.shape[0], meta["BN"] * _ITERS)
    dx = torch.empty_like(x2)
    part = torch.empty(programs, 2, D, device=x.device, dtype=torch.float32)
    _ln_bwd[(programs,)](x2, weight, dy2, dx, part, x2.shape[0], D, ITERS=_ITERS, EPS=eps, **meta)
    return dx.view(x.shape), part.sum(0)  # one reduction for both


@_ln_bwd_op.register_fake
def _(x, weight, dy, eps):
    D = x.shape[-1]
    return x.new_empty(x.shape), x.new_empty(2, D, dtype=torch.float32)


def _setup(ctx, inputs, output):
    x, weight, bias, eps, out_dtype = inputs
    ctx.save_for_backward(x, weight)
    ctx.eps = eps
    ctx.bias_dtype = bias.dtype


def _backward(ctx, dy):
    x, weight = ctx.saved_tensors
    dx, dwb = _ln_bwd_op(x, weight, dy, ctx.eps)
    return dx, dwb[0].to(weight.dtype), dwb[1].to(ctx.bias_dtype), None, None


_ln_op.register_autograd(_backward, setup_context=_setup)


def layer_norm(x: Tensor, weight: Tensor, bias: Tensor, eps: float = 1e-5,
               out_dtype: torch.dtype | None = None) -> Tensor:
    """F.layer_norm(x, (D,), weight, bias, eps) from the Triton kernels (CUDA, or the CPU under
    TRITON_INTERPRET=1). The result is in ``out_dtype``: by default the autocast dtype where autocast is on
    for x's device (what the next Linear would cast it to), else x's dtype."""
    D = x.shape[-1]
    for name, t in (("weight", weight), ("bias", bias)):
        if t is None or tuple(t.shape) != (D,) or not t.is_contiguous():
            raise ValueError(f"layer_norm needs a contiguous {name} of shape ({D},), got "
                             f"{None if t is None else tuple(t.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"layer_norm needs a floating-point input, got {x.dtype}")
    _check_offsets(x.numel())
    if out_dtype is None:
        dev = x.device.type
        out_dtype = torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else x.dtype
    return _ln_op(x, weight, bias, float(eps), out_dtype)


def fused_norm_applies(x: Tensor) -> bool:
    """Whether the blocks' LayerNorms take these kernels for this activation (COMBA_FUSED_NORM; see
    ops.block_kernels: by default on CUDA inside fused_block_kernels(), i.e. in the package's CUDA graphs)."""
    return applies("COMBA_FUSED_NORM", x)
