"""LayerNorm over the last dimension as one Triton kernel forward and one backward (plus a small sum).

Why: in a profile of a CUDA-graphed Comba-T training step on the H200 (224px, batch 128, session 8) PyTorch's
LayerNorm took 4.2 of 26.3 device-ms for the blocks' 24 norms over [25216, 192] rows: the forward 1.1 ms,
the input gradient 0.6 ms, and the weight and bias gradients (``GammaBetaBackward``) 2.5 ms. Under bf16
autocast it also returns float32, which the next Linear then copies to bf16.

Here, per row x of width D (arithmetic in float32):

    y  = (x - mean) * rstd * w + b,       rstd = 1 / sqrt(var + eps)   (biased variance, as F.layer_norm)
    dx = rstd * (g - mean(g) - x^ * mean(g * x^)),   g = dy * w,   x^ = (x - mean) * rstd
    dw = sum_rows dy * x^,   db = sum_rows dy

``add_layer_norm`` also takes the residual add before the norm, s = x + r and y = LN(s), in the same pass
(forward: s is stored and normalised as stored; backward: the sum's own gradient ds joins dx, which is written
in s's dtype and, when the branch r has another dtype, in r's too). A pre-norm block then runs its residual
add and its second norm as one kernel each way instead of two.

The forward writes y once in ``out_dtype`` (the autocast dtype under autocast, else x's), keeping nothing
but x for the backward, which recomputes mean and rstd. Each backward program walks ``ITERS`` blocks of rows
and keeps its share of dw and db in registers, written as one column of a [2 * D, programs] tensor; one
``sum(-1)`` along its rows finishes both.
"""
from __future__ import annotations

import os

import torch
import triton
import triton.language as tl
from torch import Tensor

from .block_kernels import applies, check_int32_span

_TILE = 4096  # elements of one [rows, BD] tile a program holds


@triton.jit
def _ln_stats(x, m, W, cols, D, EPS: tl.constexpr):
    """(x^, rstd, w) of the loaded rows x (float32, zeros where not m)."""
    mean = tl.sum(x, axis=1) / D
    xc = tl.where(m, x - mean[:, None], 0.0)
    rstd = 1.0 / tl.sqrt(tl.sum(xc * xc, axis=1) / D + EPS)
    w = tl.load(W + cols, mask=cols < D, other=0.0).to(tl.float32)
    return xc * rstd[:, None], rstd, w


@triton.jit
def _ln_fwd(X, R, S, W, B, Y, NROWS, D, BN: tl.constexpr, BD: tl.constexpr, EPS: tl.constexpr,
            HAS_RES: tl.constexpr, RB=None, HAS_RB: tl.constexpr = False, XH=None, RS=None,
            STORE_XH: tl.constexpr = False, FOLD: tl.constexpr = False):
    """y = LN(x), or with HAS_RES s = x + r (stored in S's dtype, which the norm then reads) and y = LN(s); with
    HAS_RB s = x + r + rb, rb [D] the branch's bias (that of the Linear layer whose output r is). STORE_XH: also
    x^ in XH's dtype and rstd (float32, one a row) in RS, what the backward then reads instead of x. FOLD: Y gets
    x^ itself (no weight or bias: the next Linear layer has them folded in) and RS rstd."""
    rows = tl.program_id(0) * BN + tl.arange(0, BN)
    cols = tl.arange(0, BD)
    m = (rows[:, None] < NROWS) & (cols[None, :] < D)
    offs = rows[:, None] * D + cols[None, :]
    x = tl.load(X + offs, mask=m, other=0.0)
    if HAS_RES:
        r = tl.load(R + offs, mask=m, other=0.0).to(tl.float32)
        if HAS_RB:
            r += tl.load(RB + cols, mask=cols < D, other=0.0).to(tl.float32)[None, :]
        x = (x.to(tl.float32) + r).to(S.dtype.element_ty)
        tl.store(S + offs, x, mask=m)
    xh, rstd, w = _ln_stats(x.to(tl.float32), m, W, cols, D, EPS)
    if FOLD:
        y = xh
    else:
        y = xh * w[None, :] + tl.load(B + cols, mask=cols < D, other=0.0).to(tl.float32)[None, :]
    tl.store(Y + offs, y.to(Y.dtype.element_ty), mask=m)
    if STORE_XH:
        tl.store(XH + offs, xh.to(XH.dtype.element_ty), mask=m)
    if STORE_XH or FOLD:
        tl.store(RS + rows, rstd, mask=rows < NROWS)


@triton.jit
def _ln_bwd(X, W, DY, DX, DWBP, DS, DR, NROWS, D, BN: tl.constexpr, BD: tl.constexpr, ITERS: tl.constexpr,
            EPS: tl.constexpr, HAS_RES: tl.constexpr, STORE_DR: tl.constexpr, HAS_RB: tl.constexpr = False,
            RS=None, FROM_XH: tl.constexpr = False, FOLD: tl.constexpr = False):
    """dx of y = LN(x); with HAS_RES (x = s = x0 + r) the sum's own gradient ds is added, and with STORE_DR
    the result is also stored in r's dtype (DR) for the residual branch. HAS_RB (s = x0 + r + rb): the column
    sums of that gradient, rb's, as a third row of the partials. FROM_XH: X holds x^ and RS rstd (the forward's
    STORE_XH), not x. FOLD (with FROM_XH): the forward's y was x^ itself (the forward's FOLD), so DY is x^'s
    gradient, taken as it is (no weight), and no dw or db is formed (the next Linear layer forms them); the
    partials then hold drb alone (row 0), with HAS_RB, else nothing."""
    pid = tl.program_id(0)
    dw = tl.zeros([BD], dtype=tl.float32)
    db = tl.zeros([BD], dtype=tl.float32)
    drb = tl.zeros([BD], dtype=tl.float32)
    cols = tl.arange(0, BD)
    for it in range(ITERS):
        rows = (pid * ITERS + it) * BN + tl.arange(0, BN)
        m = (rows[:, None] < NROWS) & (cols[None, :] < D)
        offs = rows[:, None] * D + cols[None, :]
        if FROM_XH:
            xh = tl.load(X + offs, mask=m, other=0.0).to(tl.float32)
            rstd = tl.load(RS + rows, mask=rows < NROWS, other=0.0)
            if not FOLD:
                w = tl.load(W + cols, mask=cols < D, other=0.0).to(tl.float32)
        else:
            xh, rstd, w = _ln_stats(tl.load(X + offs, mask=m, other=0.0).to(tl.float32), m, W, cols, D, EPS)
        dy = tl.load(DY + offs, mask=m, other=0.0).to(tl.float32)
        if FOLD:
            g = dy
        else:
            g = dy * w[None, :]
        c1 = tl.sum(g, axis=1) / D
        c2 = tl.sum(g * xh, axis=1) / D
        dx = rstd[:, None] * (g - c1[:, None] - xh * c2[:, None])
        if HAS_RES:
            dx += tl.load(DS + offs, mask=m, other=0.0).to(tl.float32)
        tl.store(DX + offs, dx.to(DX.dtype.element_ty), mask=m)
        if STORE_DR:
            tl.store(DR + offs, dx.to(DR.dtype.element_ty), mask=m)
        if not FOLD:
            dw += tl.sum(dy * xh, axis=0)
            db += tl.sum(dy, axis=0)
        if HAS_RB:
            drb += tl.sum(dx, axis=0)
    # this program's column of the [2 * D (3 * D with HAS_RB), programs] partials (summed along rows afterwards: a
    # row sum is some 3 us in a CUDA graph where the column sum of the transposed layout took 11 at Comba-T's 784
    # programs)
    npr = tl.num_programs(0)
    if FOLD:
        if HAS_RB:
            tl.store(DWBP + cols * npr + pid, drb, mask=cols < D)
    else:
        tl.store(DWBP + cols * npr + pid, dw, mask=cols < D)
        tl.store(DWBP + (D + cols) * npr + pid, db, mask=cols < D)
        if HAS_RB:
            tl.store(DWBP + (2 * D + cols) * npr + pid, drb, mask=cols < D)


def _meta(D: int):
    BD = triton.next_power_of_2(D)
    return dict(BN=max(1, _TILE // BD), BD=BD, num_warps=4 if BD <= 1024 else 8)


def _bwd_tile_override() -> tuple[int, int, int] | None:
    """COMBA_LN_BWD_TILE="rows,warps,row_blocks" (powers of two) sets the backward's tiles, for timing others
    than _bwd_meta's (docs/bench/2026-11-30-h200-s21/lnbench.py); unset: _bwd_meta's."""
    raw = os.environ.get("COMBA_LN_BWD_TILE", "")
    if not raw:
        return None
    try:
        tile = tuple(int(v) for v in raw.split(","))
    except ValueError:
        tile = ()
    if len(tile) != 3 or any(v < 1 or v & (v - 1) for v in tile) or tile[1] > 32:
        raise ValueError(f"COMBA_LN_BWD_TILE must be 'rows,warps,row_blocks', powers of two (warps <= 32), got {raw!r}")
    return tile


def _bwd_meta(D: int):
    """The backward's tiles: 16 rows, a warp per 128 padded columns (two at least), four row blocks a program
    up to 256 columns, two above. H200, bf16 dy, float32 residual stream, 25088 rows, in a CUDA graph (session
    11 sweep of tile, row blocks and warps): the residual-add backward 57 -> 40 us at D = 192 and 97 -> 78 us at
    D = 384 against the forward's tiles with two row blocks and four warps. (At D = 192 with the branch bias this
    spills 252 bytes a thread on sm_90, session 21; COMBA_LN_BWD_TILE times others.)"""
    BD = triton.next_power_of_2(D)
    tile = _bwd_tile_override()
    if tile is not None:
        return dict(BN=tile[0], BD=BD, num_warps=tile[1], ITERS=tile[2])
    return dict(BN=max(1, min(16, 8192 // BD)), BD=BD, num_warps=max(2, min(8, BD // 128)),
                ITERS=4 if BD <= 256 else 2)


def _partial_rows(has_rb: bool, fold: bool) -> int:
    """Rows of _ln_bwd's partials: dw, db (not with fold) and drb (with has_rb)."""
    return (0 if fold else 2) + has_rb


def _run_ln_bwd(x2: Tensor, weight: Tensor, dy2: Tensor, dx: Tensor, ds2: Tensor, dr: Tensor, eps: float,
                has_res: bool, store_dr: bool, has_rb: bool = False, rstd: Tensor | None = None,
                fold: bool = False) -> Tensor:
    """_ln_bwd over the rows of x2 [rows, D] on the backward's tiles (dx written; ds2 read with has_res, dr
    written with store_dr): returns [dw; db] as one [2, D] float32 tensor (one reduction of the partials), with
    has_rb [dw; db; drb] as [3, D]. With rstd, x2 is x^ (the forward's keep_xh or fold); with fold, dy2 is x^'s
    gradient and the result is [drb] ([1, D]) with has_rb, else [0, D]."""
    D = x2.shape[1]
    meta = _bwd_meta(D)
    programs = triton.cdiv(x2.shape[0], meta["BN"] * meta["ITERS"])
    part = torch.empty(_partial_rows(has_rb, fold), D, programs, device=x2.device, dtype=torch.float32)
    _ln_bwd[(programs,)](x2, weight, dy2, dx, part, ds2, dr, x2.shape[0], D, EPS=eps, HAS_RES=has_res,
                         STORE_DR=store_dr, HAS_RB=has_rb, RS=rstd, FROM_XH=rstd is not None, FOLD=fold, **meta)
    return part.sum(-1)


# What the backward keeps. The norm's input x (Comba-T: the float32 residual stream) is 4 bytes an element; where
# the output is narrower (bf16 under autocast) the forward also writes x^ in float16 and rstd, and the backward
# reads those instead of recomputing them from x: half the bytes kept (and read) for the norms. float16, not the
# output's bf16: |x^| <= sqrt(D - 1) is far inside its range, and its 2^-11 rounding is a quarter of bf16's (the
# weight gradient sum(dy * x^) had 1.6e-3 relative error from bf16 x^ on the H200, 4x its error from x; tests).
# Comba-T at 1024px: 38 of 572 MB an image kept for the backward. COMBA_LN_KEEP_XHAT=0: x kept.
KEEP_XHAT = os.environ.get("COMBA_LN_KEEP_XHAT", "1") == "1"
# The block's norms folded into the Linear layer that reads them (``fold``; layers.comba_mixer decides where):
# the norm writes x^ in the output dtype as its output and the layer multiplies x^ by W diag(w) and adds W b + c,
# so that x^ (kept by the layer) and rstd are all a norm keeps: 384 bytes a token less per Comba-T norm.
NORM_FOLD = os.environ.get("COMBA_NORM_FOLD", "1") == "1"
_XH_DTYPE = torch.float16


def _keeps_xh(x_dtype: torch.dtype, out_dtype: torch.dtype, *inputs: Tensor | None) -> bool:
    """Whether the norm keeps x^ and rstd: a float32 input, a 2-byte output, and a backward to come for the inputs."""
    return (KEEP_XHAT and x_dtype == torch.float32 and out_dtype.itemsize == 2 and torch.is_grad_enabled()
            and any(t is not None and t.requires_grad for t in inputs))


def _xh_buffers(x2: Tensor, keep: bool, fold: bool = False) -> tuple[Tensor, Tensor]:
    """(x^ [rows, D] float16, rstd [rows] float32) for the forward to write, or two empty tensors; with fold an
    empty x^ (the output is x^) and rstd."""
    xh = torch.empty(x2.shape if keep else 0, dtype=_XH_DTYPE, device=x2.device)
    return xh, x2.new_empty(x2.shape[0] if keep or fold else 0, dtype=torch.float32)


@torch.library.custom_op("comba_vision::layer_norm", mutates_args=())
def _ln_op(x: Tensor, weight: Tensor, bias: Tensor, eps: float, out_dtype: torch.dtype,
           keep_xh: bool = False, fold: bool = False) -> tuple[Tensor, Tensor, Tensor]:
    """(y, and with keep_xh x^ [rows, D] float16 and rstd [rows] for the backward, else empty tensors). fold: y is
    x^ in out_dtype (weight and bias not applied), with rstd."""
    D = x.shape[-1]
    x2 = x.reshape(-1, D).contiguous()
    y = torch.empty(x2.shape, dtype=out_dtype, device=x.device)
    xh, rstd = _xh_buffers(x2, keep_xh, fold)
    meta = _meta(D)
    _ln_fwd[(triton.cdiv(x2.shape[0], meta["BN"]),)](x2, x2, x2, weight, bias, y, x2.shape[0], D, EPS=eps,
                                                      HAS_RES=False, XH=xh, RS=rstd, STORE_XH=keep_xh, FOLD=fold,
                                                      **meta)
    return y.view(x.shape), xh, rstd


@_ln_op.register_fake
def _(x, weight, bias, eps, out_dtype, keep_xh=False, fold=False):
    return (x.new_empty(x.shape, dtype=out_dtype), *_xh_buffers(x.reshape(-1, x.shape[-1]), keep_xh, fold))


@torch.library.custom_op("comba_vision::layer_norm_bwd", mutates_args=())
def _ln_bwd_op(x: Tensor, weight: Tensor, dy: Tensor, eps: float, rstd: Tensor | None = None,
               x_dtype: torch.dtype | None = None, fold: bool = False) -> tuple[Tensor, Tensor]:
    """(dx in x_dtype (default x's), [dw; db] as one [2, D] float32 tensor). With rstd, x is x^ [rows, D]; with
    fold, dy is x^'s gradient and no [dw; db] is formed (an empty [0, D])."""
    D = x.shape[-1]
    x2, dy2 = x.reshape(-1, D).contiguous(), dy.reshape(-1, D).contiguous()
    dx = torch.empty(x2.shape, dtype=x_dtype or x.dtype, device=x.device)
    dwb = _run_ln_bwd(x2, weight, dy2, dx, dx, dx, eps, has_res=False, store_dr=False, rstd=rstd, fold=fold)
    return dx.view(dy.shape), dwb


@_ln_bwd_op.register_fake
def _(x, weight, dy, eps, rstd=None, x_dtype=None, fold=False):
    D = x.shape[-1]
    return (dy.new_empty(dy.shape, dtype=x_dtype or x.dtype),
            x.new_empty(_partial_rows(False, fold), D, dtype=torch.float32))


def _kept(inputs_x: Tensor, y: Tensor, xh: Tensor, rstd: Tensor, keep_xh: bool, fold: bool) -> tuple:
    """What a norm node keeps for its backward besides the weight: (x^, rstd) with keep_xh, (y, rstd) with fold
    (y is x^), else (its input, None)."""
    return (xh, rstd) if keep_xh else (y, rstd) if fold else (inputs_x, None)


def _setup(ctx, inputs, output):
    x, weight, bias, eps, out_dtype, keep_xh, fold = inputs
    y, xh, rstd = output
    ctx.mark_non_differentiable(xh, rstd)
    ctx.set_materialize_grads(False)  # no zero-filled gradients for x^ and rstd
    ctx.save_for_backward(*_kept(x, y, xh, rstd, keep_xh, fold), weight)
    ctx.eps, ctx.fold = eps, fold
    ctx.dtypes = (x.dtype, bias.dtype)


def _backward(ctx, dy, *_):
    if dy is None:
        return (None,) * 7
    x, rstd, weight = ctx.saved_tensors
    dx, dwb = _ln_bwd_op(x, weight, dy, ctx.eps, rstd, ctx.dtypes[0], ctx.fold)
    if ctx.fold:  # the weight's and bias's gradients come from the Linear layer they are folded into
        return dx, None, None, None, None, None, None
    return dx, dwb[0].to(weight.dtype), dwb[1].to(ctx.dtypes[1]), None, None, None, None


_ln_op.register_autograd(_backward, setup_context=_setup)


@torch.library.custom_op("comba_vision::add_layer_norm", mutates_args=())
def _add_ln_op(x: Tensor, r: Tensor, weight: Tensor, bias: Tensor, eps: float,
               out_dtype: torch.dtype, rb: Tensor | None = None, keep_xh: bool = False, fold: bool = False
               ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(s, y, and with keep_xh x^ of s [rows, D] float16 and rstd [rows] for the backward, else empty
    tensors). fold: y is x^ in out_dtype (weight and bias not applied), with rstd."""
    D = x.shape[-1]
    x2, r2 = x.reshape(-1, D).contiguous(), r.reshape(-1, D).contiguous()
    s = torch.empty(x2.shape, dtype=torch.promote_types(x.dtype, r.dtype), device=x.device)
    y = torch.empty(x2.shape, dtype=out_dtype, device=x.device)
    xh, rstd = _xh_buffers(x2, keep_xh, fold)
    meta = _meta(D)
    _ln_fwd[(triton.cdiv(x2.shape[0], meta["BN"]),)](x2, r2, s, weight, bias, y, x2.shape[0], D, EPS=eps,
                                                      HAS_RES=True, RB=rb, HAS_RB=rb is not None, XH=xh, RS=rstd,
                                                      STORE_XH=keep_xh, FOLD=fold, **meta)
    return s.view(x.shape), y.view(x.shape), xh, rstd


@_add_ln_op.register_fake
def _(x, r, weight, bias, eps, out_dtype, rb=None, keep_xh=False, fold=False):
    return (x.new_empty(x.shape, dtype=torch.promote_types(x.dtype, r.dtype)),
            x.new_empty(x.shape, dtype=out_dtype), *_xh_buffers(x.reshape(-1, x.shape[-1]), keep_xh, fold))


@torch.library.custom_op("comba_vision::add_layer_norm_bwd", mutates_args=())
def _add_ln_bwd_op(s: Tensor, weight: Tensor, ds: Tensor, dy: Tensor, eps: float,
                   r_dtype: torch.dtype, has_rb: bool = False, rstd: Tensor | None = None, fold: bool = False
                   ) -> tuple[Tensor, Tensor, Tensor]:
    """(d(x + r) in ds's dtype (s's), the same in r's dtype where that differs (else an empty placeholder: the
    caller hands dx to both), [dw; db] as one [2, D] float32 tensor; has_rb: [dw; db; drb], [3, D]). With rstd,
    s is x^ of the sum [rows, D] (float16, or with fold the output's dtype, dy then x^'s gradient and the
    partials [drb] or nothing)."""
    D = s.shape[-1]
    s2, ds2, dy2 = (t.reshape(-1, D).contiguous() for t in (s, ds, dy))
    dx = torch.empty_like(ds2)
    same = r_dtype == ds.dtype
    dr = s2.new_empty(0, dtype=r_dtype) if same else torch.empty(s2.shape, dtype=r_dtype, device=s.device)
    dwb = _run_ln_bwd(s2, weight, dy2, dx, ds2, dr, eps, has_res=True, store_dr=not same, has_rb=has_rb, rstd=rstd,
                      fold=fold)
    return dx.view(ds.shape), (dr if same else dr.view(ds.shape)), dwb


@_add_ln_bwd_op.register_fake
def _(s, weight, ds, dy, eps, r_dtype, has_rb=False, rstd=None, fold=False):
    D = s.shape[-1]
    dr = s.new_empty(0, dtype=r_dtype) if r_dtype == ds.dtype else ds.new_empty(ds.shape, dtype=r_dtype)
    return ds.new_empty(ds.shape), dr, s.new_empty(_partial_rows(has_rb, fold), D, dtype=torch.float32)


def _add_setup(ctx, inputs, output):
    x, r, weight, bias, eps, out_dtype, rb, keep_xh, fold = inputs
    s, y, xh, rstd = output
    ctx.mark_non_differentiable(xh, rstd)
    ctx.set_materialize_grads(False)  # no zero-filled gradients for x^ and rstd (nor s or y: None below)
    ctx.save_for_backward(*_kept(s, y, xh, rstd, keep_xh, fold), weight)
    ctx.eps, ctx.fold = eps, fold
    ctx.dtypes = (x.dtype, r.dtype, bias.dtype, None if rb is None else rb.dtype, s.dtype)
    ctx.shape = s.shape


def _add_backward(ctx, ds, dy, *_):
    if ds is None and dy is None:
        return (None,) * 9
    s, rstd, weight = ctx.saved_tensors
    x_dtype, r_dtype, bias_dtype, rb_dtype, s_dtype = ctx.dtypes
    ds = ds if ds is not None else s.new_zeros(ctx.shape, dtype=s_dtype)
    dy = dy if dy is not None else s.new_zeros(ctx.shape)
    dx, dr, dwb = _add_ln_bwd_op(s, weight, ds, dy, ctx.eps, r_dtype, rb_dtype is not None, rstd, ctx.fold)
    if r_dtype == s_dtype:  # one gradient for both summands, as x + r's own backward hands out
        dr = dx
    drb = None if rb_dtype is None else dwb[-1].to(rb_dtype)
    if ctx.fold:  # the weight's and bias's gradients come from the Linear layer they are folded into
        return dx.to(x_dtype), dr, None, None, None, None, drb, None, None
    return dx.to(x_dtype), dr, dwb[0].to(weight.dtype), dwb[1].to(bias_dtype), None, None, drb, None, None


_add_ln_op.register_autograd(_add_backward, setup_context=_add_setup)


def layer_norm(x: Tensor, weight: Tensor, bias: Tensor, eps: float = 1e-5,
               out_dtype: torch.dtype | None = None, fold: bool = False) -> Tensor:
    """F.layer_norm(x, (D,), weight, bias, eps) from the Triton kernels (CUDA, or the CPU under
    TRITON_INTERPRET=1). The result is in ``out_dtype``: by default the autocast dtype where autocast is on
    for x's device (what the next Linear would cast it to), else x's dtype.

    fold: the result is x^ = (x - mean) * rstd alone, for a Linear layer that takes weight and bias folded into
    its own (ops.linear's fold): the norm then keeps only x^ (the result, which that layer keeps anyway) and rstd,
    and gives weight and bias no gradient (the Linear layer does)."""
    _check_args(x, weight, bias)
    out_dtype = _out_dtype(x, out_dtype)
    keep = not fold and _keeps_xh(x.dtype, out_dtype, x, weight, bias)
    return _ln_op(x, weight, bias, float(eps), out_dtype, keep, fold)[0]


def folds(x: Tensor, *inputs: Tensor | None) -> bool:
    """Whether a norm of x (the stream, before any residual add; inputs: the norm's other inputs) should hand x^ to
    a Linear layer that folds its weight and bias (``fold``): where it would keep x^ (a float32 input, a 2-byte
    output, a backward to come; COMBA_LN_KEEP_XHAT) and COMBA_NORM_FOLD is on."""
    return NORM_FOLD and _keeps_xh(x.dtype, _out_dtype(x, None), x, *inputs)


def _check_args(x: Tensor, weight: Tensor, bias: Tensor) -> None:
    D = x.shape[-1]
    for name, t in (("weight", weight), ("bias", bias)):
        if t is None or tuple(t.shape) != (D,) or not t.is_contiguous():
            raise ValueError(f"layer_norm needs a contiguous {name} of shape ({D},), got "
                             f"{None if t is None else tuple(t.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"layer_norm needs a floating-point input, got {x.dtype}")
    check_int32_span(x.numel(), "x", "LayerNorm kernels", "COMBA_FUSED_NORM")


def _out_dtype(x: Tensor, out_dtype: torch.dtype | None, normed: torch.dtype | None = None) -> torch.dtype:
    """The norm's output dtype: out_dtype, else the autocast dtype where autocast is on for x's device, else the
    dtype of what is normalised (normed, by default x's)."""
    if out_dtype is None:
        dev = x.device.type
        out_dtype = torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else (normed or x.dtype)
    return out_dtype


def add_layer_norm(x: Tensor, r: Tensor, weight: Tensor, bias: Tensor, eps: float = 1e-5,
                   out_dtype: torch.dtype | None = None, rb: Tensor | None = None,
                   fold: bool = False) -> tuple[Tensor, Tensor]:
    """(s, LN(s)) for the residual sum s = x + r (in the promoted dtype of x and r, as ``x + r``), from one
    Triton kernel forward and one backward: a pre-norm block's residual add and the next norm in one pass. The
    norm's output dtype is chosen as layer_norm's. rb [D]: s = x + (r + rb), the bias of the Linear layer that
    made r added here instead (its gradient, the column sums of ds, comes from the same backward pass rather than
    a column-sum kernel of its own); the sum is in x and r's promoted dtype, whatever rb's. fold: as layer_norm's
    (the second result is x^ of s)."""
    if r.shape != x.shape:
        raise ValueError(f"add_layer_norm: x {tuple(x.shape)} and r {tuple(r.shape)} differ in shape")
    if not r.is_floating_point():
        raise ValueError(f"add_layer_norm needs a floating-point residual branch, got {r.dtype}")
    _check_args(x, weight, bias)
    if rb is not None and (tuple(rb.shape) != (x.shape[-1],) or not rb.is_contiguous()):
        raise ValueError(f"add_layer_norm needs a contiguous branch bias rb of shape ({x.shape[-1]},), got "
                         f"{tuple(rb.shape)}")
    s_dtype = torch.promote_types(x.dtype, r.dtype)
    out_dtype = _out_dtype(x, out_dtype, s_dtype)
    keep = not fold and _keeps_xh(s_dtype, out_dtype, x, r, weight, bias, rb)
    return _add_ln_op(x, r, weight, bias, float(eps), out_dtype, rb, keep, fold)[:2]


def fused_norm_applies(x: Tensor) -> bool:
    """Whether the blocks' LayerNorms take these kernels for this activation (COMBA_FUSED_NORM; see
    ops.block_kernels: by default on CUDA inside fused_block_kernels(), i.e. in the package's CUDA graphs)."""
    return applies("COMBA_FUSED_NORM", x)
