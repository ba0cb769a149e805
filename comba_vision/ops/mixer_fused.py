"""The Comba mixer's elementwise work around the operator, fused into Triton kernels.

Input side, ``mixer_prep``. From the depthwise conv's output ``c`` [B, N, 2HK + HV] (before the SiLU) and
the gate logits ``z`` [B, N, 2H] (forget logits, then input-gate logits), per token and head h:

    q, k, v = SiLU(c) split into the head's columns          (q and k: K wide, v: V wide)
    q^, k^  = q / max(|q|, eps), k / max(|k|, eps)             (F.normalize)
    p       = sigmoid(b_h) k^                                  (feedback key)
    q~      = q^ - d_h k^                                      (output correction)
    g       = -exp(A_log_h) softplus(z_a + dt_bias_h),   beta = sigmoid(z_b)

Output side, ``mixer_out``. From both scans' outputs ``o2`` [2, B, N, H, V] and the output-gate logits
``y_g`` [B, N, H * V]:

    y = RMSNorm_head(o2[0] + o2[1]) * w * sigmoid(y_g)                                   [B, N, H * V]

``mixer_prep_torch`` / ``mixer_out_torch`` write this as PyTorch ops (the CPU path and the reference); the
fused forms run one launch forward and one backward each (plus one reduction for the parameter gradients),
where the PyTorch ops are some 30 kernels forward and 50 backward per block, each a pass over the
activations. Arithmetic is float32 and each output is rounded once to its dtype (q~, k, v, p: c's dtype;
g, beta: float32; y: o2's dtype), so in bf16 the fused forms differ from the PyTorch ones by that rounding.
"""
from __future__ import annotations

import os

import torch
import torch.nn.functional as F
import triton
import triton.language as tl
from torch import Tensor

from . import triton_chunk
from .block_kernels import check_int32_span
from .function import chunk_buffers, chunk_bwd
from .token_grid import _grid_rows, _tap
from .triton_chunk import BOTH, comba_fwd_triton, empty_work_buffers

EPS = 1e-12  # F.normalize's default
# COMBA_FUSED_MIXER (default 1): on CUDA the mixer runs the fused kernels of this module
FUSED_MIXER = os.environ.get("COMBA_FUSED_MIXER", "1") == "1"
BLOCK_TOKENS = 32


def _row_stride(t: Tensor) -> int | None:
    """The stride of t [B, N, D]'s B * N rows if they are uniformly spaced and dense along D, else None. (With
    one token a sequence the rows are stride(0) apart, whatever stride(1) says; with one sequence, stride(1).)"""
    if t.dim() != 3 or (t.stride(-1) != 1 and t.shape[-1] > 1):
        return None
    if t.shape[1] == 1:
        return t.stride(0)
    return t.stride(1) if t.shape[0] == 1 or t.stride(0) == t.shape[1] * t.stride(1) else None


def _rows(t: Tensor) -> tuple[Tensor, int]:
    """t [B, N, D] as such rows: (t, or a dense copy of it, the row stride). The gate logits are column
    slices of one projection's output: read in place."""
    stride = _row_stride(t)
    if stride is None:  # a contiguous tensor always has uniform rows by the test above
        t = t.contiguous()
        stride = _row_stride(t)
    return t, stride


# ----------------------------------------------------------------------------------------------- input side
def mixer_prep_torch(c: Tensor, z: Tensor, A_log: Tensor, dt_bias: Tensor, b_logit: Tensor, d: Tensor,
                     H: int, K: int, V: int):
    """q~, k, v, p ([B, N, H, *], c's dtype) and g, beta ([B, N, H], float32) as PyTorch ops."""
    B, N, _ = c.shape
    a = F.silu(c)
    q, k, v = a.split((H * K, H * K, H * V), dim=-1)
    # back to c's dtype: CUDA autocast runs F.normalize in float32
    q = F.normalize(q.reshape(B, N, H, K), dim=-1, eps=EPS).to(c.dtype)
    k = F.normalize(k.reshape(B, N, H, K), dim=-1, eps=EPS).to(c.dtype)
    v = v.reshape(B, N, H, V)
    a_in, b_in = z.float().chunk(2, dim=-1)
    g = -A_log.float().exp() * F.softplus(a_in + dt_bias.float())
    beta = torch.sigmoid(b_in)
    p = k * torch.sigmoid(b_logit)[:, None].to(k.dtype)
    q = q - d[:, None].to(q.dtype) * k
    return q, k, v, p, g, beta


@triton.jit
def _c_cols(C, rows, m_r, col0, W, D, BD: tl.constexpr, A, SA, CW, CB, yy, xx, GH, GW, BN: tl.constexpr,
            KS: tl.constexpr, CONV: tl.constexpr, ALIGNED: tl.constexpr):
    """Columns col0 .. col0 + D of the conv output c's rows, float32 (zeros outside m_r). With CONV, c is formed
    here from the conv's input A (rows SA apart), weight CW [C, KS * KS] and bias CB, as _dw_fwd forms it (taps in
    the same order, then the bias, rounded to A's dtype), for rows of one patch grid (at yy, xx of GH x GW), and C
    is not read."""
    cols = tl.arange(0, BD)
    m_c = cols < D
    m = m_r[:, None] & m_c[None, :]
    if CONV:
        acc = tl.zeros([BN, BD], dtype=tl.float32)
        for t in tl.static_range(KS * KS):
            w = tl.load(CW + (col0 + cols) * (KS * KS) + t, mask=m_c, other=0.0).to(tl.float32)
            acc += _tap(A, SA, rows, m_r, yy, xx, col0 + cols, m_c, GH, GW, t, KS, ALIGNED) * w[None, :]
        acc += tl.load(CB + col0 + cols, mask=m_c, other=0.0).to(tl.float32)[None, :]
        x = tl.where(m, acc.to(A.dtype.element_ty).to(tl.float32), 0.0)
    else:
        x = tl.load(C + rows[:, None] * W + col0 + cols[None, :], mask=m, other=0.0).to(tl.float32)
    return x


@triton.jit
def _silu_norm(C, rows, m_r, col0, W, D, BD: tl.constexpr, NORM: tl.constexpr, EPS: tl.constexpr,
               A=None, SA=0, CW=None, CB=None, yy=0, xx=0, GH=1, GW=1, BN: tl.constexpr = 1, KS: tl.constexpr = 3,
               CONV: tl.constexpr = False, ALIGNED: tl.constexpr = False):
    """Columns col0 .. col0 + D of C's rows (or of the conv's output formed from A: _c_cols): (pre-activation,
    SiLU, normalised SiLU or SiLU, 1 / norm)."""
    x = _c_cols(C, rows, m_r, col0, W, D, BD, A, SA, CW, CB, yy, xx, GH, GW, BN, KS, CONV, ALIGNED)
    a = x * tl.sigmoid(x)
    inv = 1.0 / tl.maximum(tl.sqrt(tl.sum(a * a, axis=1)), EPS)
    if NORM:
        return x, a, a * inv[:, None], inv
    return x, a, a, inv


@triton.jit
def _dsilu(x, da):
    s = tl.sigmoid(x)
    return da * s * (1.0 + x * (1.0 - s))


@triton.jit
def _head_rows(ptr, rows, m_r, i_h, H, D, BD: tl.constexpr):
    """Pointers and mask of head i_h's D columns in a dense [rows, H, D] tensor."""
    return _head_rows_s(ptr, rows, m_r, i_h, D, H * D, BD)


@triton.jit
def _head_rows_s(ptr, rows, m_r, i_h, D, RS, BD: tl.constexpr):
    """The same in rows RS elements apart (a column slice of a wider tensor)."""
    cols = tl.arange(0, BD)
    return ptr + rows[:, None] * RS + i_h * D + cols[None, :], m_r[:, None] & (cols[None, :] < D)


@triton.jit
def _gates(Z, SZ, A_LOG, DT, rows, m_r, i_h, H):
    """(forget logit + dt_bias, exp(A_log), g, beta) of head i_h for the rows (Z's rows SZ apart)."""
    za = tl.load(Z + rows * SZ + i_h, mask=m_r, other=0.0).to(tl.float32) + tl.load(DT + i_h).to(tl.float32)
    zb = tl.load(Z + rows * SZ + H + i_h, mask=m_r, other=0.0).to(tl.float32)
    ea = tl.exp(tl.load(A_LOG + i_h).to(tl.float32))
    softplus = tl.maximum(za, 0.0) + tl.log(1.0 + tl.exp(-tl.abs(za)))
    return za, ea, -ea * softplus, tl.sigmoid(zb)


@triton.jit
def _prep_rows(i_n, NTOK, NSEG, NPER, START, GH, GW, BN: tl.constexpr, CONV: tl.constexpr):
    """(rows, mask, y, x) of program i_n: BN rows of the B * N token rows, or with CONV of one patch grid (GH x GW
    tokens from token START of each NPER-token sequence, NSEG rows in all) with their grid positions."""
    if CONV:
        rows, m_r, yy, xx = _grid_rows(i_n, NSEG, NPER, START, GH, GW, BN)
    else:
        rows = i_n * BN + tl.arange(0, BN)
        m_r = rows < NTOK
        yy, xx = rows, rows
    return rows, m_r, yy, xx


@triton.jit
def _prep_fwd(C, Z, SZ, A_LOG, DT, BLOG, DD, Q, KO, VO, P, G, BETA, NTOK, H, K, V,
              BN: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, EPS: tl.constexpr,
              A=None, SA=0, CW=None, CB=None, NSEG=0, NPER=0, START=0, GH=1, GW=1, KS: tl.constexpr = 3,
              CONV: tl.constexpr = False, ALIGNED: tl.constexpr = False):
    """CONV: c formed in the kernel from the conv's input (_c_cols), for the rows of one patch grid."""
    i_n, i_h = tl.program_id(0), tl.program_id(1)
    rows, m_r, yy, xx = _prep_rows(i_n, NTOK, NSEG, NPER, START, GH, GW, BN, CONV)
    W = 2 * H * K + H * V
    _, _, qh, _ = _silu_norm(C, rows, m_r, i_h * K, W, K, BK, True, EPS,
                             A, SA, CW, CB, yy, xx, GH, GW, BN, KS, CONV, ALIGNED)
    _, _, kh, _ = _silu_norm(C, rows, m_r, H * K + i_h * K, W, K, BK, True, EPS,
                             A, SA, CW, CB, yy, xx, GH, GW, BN, KS, CONV, ALIGNED)
    _, v, _, _ = _silu_norm(C, rows, m_r, 2 * H * K + i_h * V, W, V, BV, False, EPS,
                            A, SA, CW, CB, yy, xx, GH, GW, BN, KS, CONV, ALIGNED)
    s = tl.sigmoid(tl.load(BLOG + i_h).to(tl.float32))
    d = tl.load(DD + i_h).to(tl.float32)
    pk, mk = _head_rows(KO, rows, m_r, i_h, H, K, BK)
    tl.store(pk, kh.to(KO.dtype.element_ty), mask=mk)
    pq, _ = _head_rows(Q, rows, m_r, i_h, H, K, BK)
    tl.store(pq, (qh - d * kh).to(Q.dtype.element_ty), mask=mk)
    pp, _ = _head_rows(P, rows, m_r, i_h, H, K, BK)
    tl.store(pp, (s * kh).to(P.dtype.element_ty), mask=mk)
    pv, mv = _head_rows(VO, rows, m_r, i_h, H, V, BV)
    tl.store(pv, v.to(VO.dtype.element_ty), mask=mv)
    _, _, g, beta = _gates(Z, SZ, A_LOG, DT, rows, m_r, i_h, H)
    tl.store(G + rows * H + i_h, g, mask=m_r)
    tl.store(BETA + rows * H + i_h, beta, mask=m_r)


@triton.jit
def _ld2(ptr, mask, S, TWO: tl.constexpr):
    """A float32 tile of a gradient; TWO: the sum of both scan directions' gradients, S elements apart."""
    x = tl.load(ptr, mask=mask, other=0.0).to(tl.float32)
    if TWO:
        x += tl.load(ptr + S, mask=mask, other=0.0).to(tl.float32)
    return x


@triton.jit
def _prep_bwd(C, Z, SZ, A_LOG, DT, BLOG, DD, DQ, DK, DV, DP, DG, DBETA, DC, DZ, SDZ, DPAR, NTOK, H, K, V,
              BN: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, EPS: tl.constexpr, TWO: tl.constexpr,
              A=None, SA=0, CW=None, CB=None, NSEG=0, NPER=0, START=0, GH=1, GW=1, KS: tl.constexpr = 3,
              CONV: tl.constexpr = False, ALIGNED: tl.constexpr = False):
    """TWO: the six gradients are [2, B, N, H, *], both scan directions' (summed here, in float32). DZ's rows
    are SDZ elements apart. CONV: c formed in the kernel from the conv's input, as _prep_fwd's."""
    i_n, i_h = tl.program_id(0), tl.program_id(1)
    rows, m_r, yy, xx = _prep_rows(i_n, NTOK, NSEG, NPER, START, GH, GW, BN, CONV)
    W = 2 * H * K + H * V
    s = tl.sigmoid(tl.load(BLOG + i_h).to(tl.float32))
    d = tl.load(DD + i_h).to(tl.float32)
    pq, mk = _head_rows(DQ, rows, m_r, i_h, H, K, BK)
    dqt = _ld2(pq, mk, NTOK * H * K, TWO)
    pk, _ = _head_rows(DK, rows, m_r, i_h, H, K, BK)
    pp, _ = _head_rows(DP, rows, m_r, i_h, H, K, BK)
    dp = _ld2(pp, mk, NTOK * H * K, TWO)
    cols_k = tl.arange(0, BK)
    ptr_c = DC + rows[:, None] * W + cols_k[None, :]
    # q~ = q^ - d k^ and p = s k^: the normalised key's gradient gathers all three outputs' gradients
    xq, _, qh, invq = _silu_norm(C, rows, m_r, i_h * K, W, K, BK, True, EPS,
                                 A, SA, CW, CB, yy, xx, GH, GW, BN, KS, CONV, ALIGNED)
    dqh = dqt
    daq = (dqh - qh * tl.sum(qh * dqh, axis=1)[:, None]) * invq[:, None]
    tl.store(ptr_c + i_h * K, _dsilu(xq, daq).to(DC.dtype.element_ty), mask=mk)
    xk, _, kh, invk = _silu_norm(C, rows, m_r, H * K + i_h * K, W, K, BK, True, EPS,
                                 A, SA, CW, CB, yy, xx, GH, GW, BN, KS, CONV, ALIGNED)
    dkh = _ld2(pk, mk, NTOK * H * K, TWO) + s * dp - d * dqt
    dak = (dkh - kh * tl.sum(kh * dkh, axis=1)[:, None]) * invk[:, None]
    tl.store(ptr_c + H * K + i_h * K, _dsilu(xk, dak).to(DC.dtype.element_ty), mask=mk)
    xv, _, _, _ = _silu_norm(C, rows, m_r, 2 * H * K + i_h * V, W, V, BV, False, EPS,
                             A, SA, CW, CB, yy, xx, GH, GW, BN, KS, CONV, ALIGNED)
    pv, mv = _head_rows(DV, rows, m_r, i_h, H, V, BV)
    cols_v = tl.arange(0, BV)
    tl.store(DC + rows[:, None] * W + 2 * H * K + i_h * V + cols_v[None, :],
             _dsilu(xv, _ld2(pv, mv, NTOK * H * V, TWO)).to(DC.dtype.element_ty), mask=mv)
    za, ea, g, beta = _gates(Z, SZ, A_LOG, DT, rows, m_r, i_h, H)
    dg = _ld2(DG + rows * H + i_h, m_r, NTOK * H, TWO)
    dbeta = _ld2(DBETA + rows * H + i_h, m_r, NTOK * H, TWO)
    dza = -dg * ea * tl.sigmoid(za)
    tl.store(DZ + rows * SDZ + i_h, dza.to(DZ.dtype.element_ty), mask=m_r)
    tl.store(DZ + rows * SDZ + H + i_h, (dbeta * beta * (1.0 - beta)).to(DZ.dtype.element_ty), mask=m_r)
    # this program's parts of the per-head parameter gradients (summed over programs afterwards);
    # masked rows contribute nothing: their loaded gradients are zero
    base = DPAR + i_n * 4 * H + i_h
    tl.store(base, tl.sum(dg * g, axis=0))                                   # d A_log
    tl.store(base + H, tl.sum(dza, axis=0))                                  # d dt_bias
    tl.store(base + 2 * H, tl.sum(tl.sum(dp * kh, axis=1), axis=0) * s * (1.0 - s))   # d b_logit
    tl.store(base + 3 * H, -tl.sum(tl.sum(dqt * kh, axis=1), axis=0))        # d d


def _meta(H: int, K: int, V: int, ntok: int):
    BK, BV = max(16, triton.next_power_of_2(K)), max(16, triton.next_power_of_2(V))
    return (triton.cdiv(ntok, BLOCK_TOKENS), H), dict(BN=BLOCK_TOKENS, BK=BK, BV=BV, EPS=EPS, num_warps=4)


def _check_offsets(n: int, what: str) -> None:
    """n: the elements a kernel's offsets span in the tensor named what."""
    check_int32_span(n, what, "fused mixer kernels", "COMBA_FUSED_MIXER")


def _check_rows(t: Tensor, what: str, kernels: str = "fused mixer kernels", switch: str = "COMBA_FUSED_MIXER") -> None:
    """The span of t [B, N, D] as the kernels read it: B * N rows of the stride _rows gives them."""
    stride = _row_stride(t)
    check_int32_span(t.shape[0] * t.shape[1] * (stride if stride is not None else t.shape[-1]), what, kernels,
                     switch)


def _check(c: Tensor, z: Tensor, params: tuple[Tensor, ...], H: int, K: int, V: int) -> None:
    if c.dim() != 3 or c.shape[-1] != 2 * H * K + H * V:
        raise ValueError(f"c must be [B, N, 2*H*K + H*V] = [B, N, {2 * H * K + H * V}], got {tuple(c.shape)}")
    if tuple(z.shape) != (*c.shape[:2], 2 * H):
        raise ValueError(f"z must be [B, N, 2*H] = {(*c.shape[:2], 2 * H)}, got {tuple(z.shape)}")
    for name, x in zip(("A_log", "dt_bias", "b_logit", "d"), params):
        if tuple(x.shape) != (H,) or not x.is_contiguous():
            raise ValueError(f"{name} must be a contiguous [H] = [{H}] tensor, got shape {tuple(x.shape)}")
    _check_offsets(c.numel(), "c")
    _check_rows(z, "z")


def _prep_launch(c: Tensor, z: Tensor, A_log: Tensor, dt_bias: Tensor, b_logit: Tensor, d: Tensor,
                 H: int, K: int, V: int) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    c, (z, sz) = c.contiguous(), _rows(z)
    B, N, _ = c.shape
    q, k, v, p, g, beta = _prep_outputs(c, H, K, V)
    grid, meta = _meta(H, K, V, B * N)
    _prep_fwd[grid](c, z, sz, A_log, dt_bias, b_logit, d, q, k, v, p, g, beta, B * N, H, K, V, **meta)
    return q, k, v, p, g, beta


@torch.library.custom_op("comba_vision::mixer_prep", mutates_args=())
def _prep_op(c: Tensor, z: Tensor, A_log: Tensor, dt_bias: Tensor, b_logit: Tensor, d: Tensor,
             H: int, K: int, V: int) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    return _prep_launch(c, z, A_log, dt_bias, b_logit, d, H, K, V)


def _prep_outputs(c: Tensor, H: int, K: int, V: int) -> tuple[Tensor, ...]:
    """Empty q~, k, v, p ([B, N, H, *], c's dtype) and g, beta ([B, N, H], float32) for c [B, N, *]: what the prep
    writes (and its fake returns)."""
    B, N, _ = c.shape
    f32 = dict(dtype=torch.float32)
    return (*(c.new_empty(B, N, H, K) for _ in range(2)), c.new_empty(B, N, H, V), c.new_empty(B, N, H, K),
            c.new_empty(B, N, H, **f32), c.new_empty(B, N, H, **f32))


@_prep_op.register_fake
def _(c, z, A_log, dt_bias, b_logit, d, H, K, V):
    return _prep_outputs(c, H, K, V)


def _prep_bwd_launch(c: Tensor, z: Tensor, A_log: Tensor, dt_bias: Tensor, b_logit: Tensor, d: Tensor,
                     douts: tuple[Tensor, ...], H: int, K: int, V: int, dz: Tensor | None = None
                     ) -> tuple[Tensor, Tensor, Tensor]:
    """_prep_bwd_op's work; dz: where to write z's gradient (rows of a uniform stride, e.g. a column slice of
    the joint projection's gradient), else a new [B, N, 2H] tensor."""
    c, (z, sz) = c.contiguous(), _rows(z)
    dq, dk, dv, dp, dg, dbeta = (x.contiguous() for x in douts)
    B, N, _ = c.shape
    grid, meta = _meta(H, K, V, B * N)
    dc = torch.empty_like(c)
    dz = z.new_empty(z.shape) if dz is None else dz
    sdz = _row_stride(dz)
    dpar = torch.empty(grid[0], 4, H, device=c.device, dtype=torch.float32)
    _prep_bwd[grid](c, z, sz, A_log, dt_bias, b_logit, d, dq, dk, dv, dp, dg, dbeta, dc, dz, sdz, dpar, B * N, H, K,
                    V, TWO=dq.dim() == 5, **meta)
    return dc, dz, dpar.sum(0)


@torch.library.custom_op("comba_vision::mixer_prep_bwd", mutates_args=())
def _prep_bwd_op(c: Tensor, z: Tensor, A_log: Tensor, dt_bias: Tensor, b_logit: Tensor, d: Tensor,
                 dq: Tensor, dk: Tensor, dv: Tensor, dp: Tensor, dg: Tensor, dbeta: Tensor,
                 H: int, K: int, V: int) -> tuple[Tensor, Tensor, Tensor]:
    """(dc, dz, the four per-head parameter gradients as [4, H] float32). The six output gradients are
    [B, N, H, *], or [2, B, N, H, *]: both scan directions' gradients, summed here (mixer_scan)."""
    return _prep_bwd_launch(c, z, A_log, dt_bias, b_logit, d, (dq, dk, dv, dp, dg, dbeta), H, K, V)


@_prep_bwd_op.register_fake
def _(c, z, A_log, dt_bias, b_logit, d, dq, dk, dv, dp, dg, dbeta, H, K, V):
    return c.new_empty(c.shape), z.new_empty(z.shape), c.new_empty(4, H, dtype=torch.float32)


def _param_grads(dpar: Tensor, params: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """The per-head parameters' gradients (A_log, dt_bias, b_logit, d) from _prep_bwd's [4, H] float32 sums, each
    in its parameter's dtype."""
    return tuple(dpar[i].to(x.dtype) for i, x in enumerate(params))


def _setup(ctx, inputs, output):
    c, z, A_log, dt_bias, b_logit, d, H, K, V = inputs
    ctx.save_for_backward(c, z, A_log, dt_bias, b_logit, d)
    ctx.dims = (H, K, V)


def _backward(ctx, *douts):
    c, z, A_log, dt_bias, b_logit, d = ctx.saved_tensors
    H, K, V = ctx.dims
    B, N, _ = c.shape
    # an output that took no part in the loss gets no gradient (None): zeros of its shape and dtype
    shapes = [((B, N, H, w), c.dtype) for w in (K, K, V, K)] + [((B, N, H), torch.float32)] * 2
    douts = [x if x is not None else c.new_zeros(s, dtype=dt) for x, (s, dt) in zip(douts, shapes)]
    dc, dz, dpar = _prep_bwd_op(c, z, A_log, dt_bias, b_logit, d, *douts, H, K, V)
    return (dc, dz, *_param_grads(dpar, (A_log, dt_bias, b_logit, d)), None, None, None)


_prep_op.register_autograd(_backward, setup_context=_setup)


def mixer_prep(c: Tensor, z: Tensor, A_log: Tensor, dt_bias: Tensor, b_logit: Tensor, d: Tensor,
               H: int, K: int, V: int):
    """mixer_prep_torch's outputs from the fused Triton kernels (CUDA, or the CPU under TRITON_INTERPRET=1)."""
    _check(c, z, (A_log, dt_bias, b_logit, d), H, K, V)
    return _prep_op(c, z, A_log, dt_bias, b_logit, d, H, K, V)


def fused_applies(x: Tensor) -> bool:
    """Whether the mixer takes the fused kernels for this activation (CUDA and COMBA_FUSED_MIXER)."""
    return FUSED_MIXER and x.is_cuda


# ------------------------------------------------------------------------------ input side and both scans
# The prep kernel and both scan directions of the operator (comba_bidirectional, merge="stack") as one autograd
# node. The operator's backward then hands both directions' gradients, [2, B, N, H, *], straight to the prep's
# backward kernel, which adds them as it reads them: no reduction per input (six a layer) in between.
# COMBA_MIXER_SCAN=0 gives the two nodes back.
MIXER_SCAN = os.environ.get("COMBA_MIXER_SCAN", "1") == "1"


@torch.library.custom_op("comba_vision::mixer_scan", mutates_args=())
def _scan_op(c: Tensor, z: Tensor, A_log: Tensor, dt_bias: Tensor, b_logit: Tensor, d: Tensor,
             H: int, K: int, V: int, scale: float, iplr: bool
             ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """(both scans' outputs [2, B, N, H, V], then what the backward keeps: q~, k, v, p, g, beta and the
    operator's work buffers M, W, U, h)."""
    qkvpgb = _prep_launch(c, z, A_log, dt_bias, b_logit, d, H, K, V)
    o2, _, bufs = comba_fwd_triton(*qkvpgb, scale, None, False, iplr, BOTH)
    return (o2, *qkvpgb, *bufs)


@_scan_op.register_fake
def _(c, z, A_log, dt_bias, b_logit, d, H, K, V, scale, iplr):
    B, N, _ = c.shape
    bufs = empty_work_buffers(B, N, H, K, V, 2, c.dtype, c.device)
    return (c.new_empty(2, B, N, H, V), *_prep_outputs(c, H, K, V), *bufs)


def _scan_setup(ctx, inputs, output):
    c, z, A_log, dt_bias, b_logit, d, H, K, V, scale, iplr = inputs
    _, *kept = output
    ctx.mark_non_differentiable(*kept)
    ctx.set_materialize_grads(False)
    # RECOMPUTE_BUFFERS: the backward rebuilds M, W, U, h from q~, k, v, p, g, beta (as the operator's own does)
    ctx.recompute = triton_chunk.RECOMPUTE_BUFFERS
    ctx.save_for_backward(c, z, A_log, dt_bias, b_logit, d, *(kept[:6] if ctx.recompute else kept))
    ctx.dims, ctx.scale, ctx.iplr = (H, K, V), scale, iplr


def _scan_backward(ctx, do2, *_):
    if do2 is None:
        return (None,) * 11
    c, z, A_log, dt_bias, b_logit, d, *kept = ctx.saved_tensors
    H, K, V = ctx.dims
    if ctx.recompute:
        kept += list(chunk_buffers(*kept, None, ctx.iplr, BOTH))
    dq, dk, dv, dp, dg, dbeta, _ = chunk_bwd(*kept, do2.contiguous(), None, ctx.scale, False, ctx.iplr, BOTH, False)
    dc, dz, dpar = _prep_bwd_op(c, z, A_log, dt_bias, b_logit, d, dq, dk, dv, dp, dg, dbeta, H, K, V)
    return (dc, dz, *_param_grads(dpar, (A_log, dt_bias, b_logit, d)), None, None, None, None, None)


_scan_op.register_autograd(_scan_backward, setup_context=_scan_setup)


def mixer_scan_applies(c: Tensor) -> bool:
    """Whether mixer_scan runs for this conv output: the fused kernels apply, the operator runs on Triton with
    both directions in one launch, and the sequence is not empty (COMBA_MIXER_SCAN)."""
    from .comba import _one_launch_applies, _pick_backend
    return MIXER_SCAN and fused_applies(c) and c.shape[1] > 0 and _one_launch_applies(_pick_backend(None, c.device))


def mixer_scan(c: Tensor, z: Tensor, A_log: Tensor, dt_bias: Tensor, b_logit: Tensor, d: Tensor,
               H: int, K: int, V: int, variant: str = "splr", scale: float | None = None) -> Tensor:
    """comba_bidirectional(*mixer_prep(c, z, ...), variant=variant, scale=scale, merge="stack"), both scans'
    outputs [2, B, N, H, V], as one autograd node (no direction sums in its backward; see MIXER_SCAN).
    Triton only (CUDA, or the CPU under TRITON_INTERPRET=1)."""
    from .comba import check_sizes_and_variant
    check_sizes_and_variant(K, V, variant)
    _check(c, z, (A_log, dt_bias, b_logit, d), H, K, V)
    _check_offsets(2 * c.shape[0] * c.shape[1] * H * max(K, V), "both scans' outputs and gradients")
    scale = float(K ** -0.5 if scale is None else scale)
    return _scan_op(c, z, A_log, dt_bias, b_logit, d, H, K, V, scale, variant == "iplr")[0]


# ---------------------------------------------------------------------------------------------- output side
def mixer_out_torch(o2: Tensor, y_g: Tensor, weight: Tensor, eps: float | None) -> Tensor:
    """RMSNorm_head(o2[0] + o2[1]) * weight * sigmoid(y_g) as PyTorch ops, [B, N, H * V] in o2's dtype.
    o2 may also be the sum already, [B, N, H, V]."""
    o = o2[0] + o2[1] if o2.dim() == 5 else o2
    B, N, H, V = o.shape
    # the norm's weight in the activations' dtype: with a float32 weight under bf16 autocast, torch's
    # fused RMSNorm kernel is skipped for a slower composite one
    o = F.rms_norm(o, (V,), weight.to(o.dtype), eps)
    return (o * torch.sigmoid(y_g).reshape(B, N, H, V)).reshape(B, N, H * V)


@triton.jit
def _out_setup(O2, YG, SYG, WN, rows, m_r, i_h, NTOK, H, V, BV: tl.constexpr, EPS: tl.constexpr, TWO: tl.constexpr):
    """(sum of both scans, 1 / rms, weight, output gate) of head i_h for the rows. TWO: O2 holds both
    scans' outputs one after the other, else their sum."""
    p, m = _head_rows(O2, rows, m_r, i_h, H, V, BV)
    o = tl.load(p, mask=m, other=0.0).to(tl.float32)
    if TWO:
        # the sum rounded to the scans' dtype, as the PyTorch form (and the sum the forward keeps) has it
        o = (o + tl.load(p + NTOK * H * V, mask=m, other=0.0).to(tl.float32)).to(O2.dtype.element_ty).to(tl.float32)
    r = 1.0 / tl.sqrt(tl.sum(o * o, axis=1) / V + EPS)
    cols = tl.arange(0, BV)
    w = tl.load(WN + cols, mask=cols < V, other=0.0).to(tl.float32)
    pg, _ = _head_rows_s(YG, rows, m_r, i_h, V, SYG, BV)
    sg = tl.sigmoid(tl.load(pg, mask=m, other=0.0).to(tl.float32))
    return o, r, w, sg, m


@triton.jit
def _out_fwd(O2, YG, SYG, WN, Y, OS, NTOK, H, V, BN: tl.constexpr, BV: tl.constexpr, EPS: tl.constexpr,
             TWO: tl.constexpr, STORE_SUM: tl.constexpr = False):
    """STORE_SUM: also the scans' sum, [NTOK, H, V] in O2's dtype, to OS (what the backward keeps)."""
    i_n, i_h = tl.program_id(0), tl.program_id(1)
    rows = i_n * BN + tl.arange(0, BN)
    m_r = rows < NTOK
    o, r, w, sg, m = _out_setup(O2, YG, SYG, WN, rows, m_r, i_h, NTOK, H, V, BV, EPS, TWO)
    py, _ = _head_rows(Y, rows, m_r, i_h, H, V, BV)
    tl.store(py, (o * r[:, None] * w[None, :] * sg).to(Y.dtype.element_ty), mask=m)
    if STORE_SUM:
        ps, _ = _head_rows(OS, rows, m_r, i_h, H, V, BV)
        tl.store(ps, o.to(OS.dtype.element_ty), mask=m)


@triton.jit
def _out_bwd(O2, YG, SYG, WN, DY, DO2, DYG, SDYG, DWP, NTOK, H, V, BN: tl.constexpr, BV: tl.constexpr,
             EPS: tl.constexpr, TWO: tl.constexpr, DO_TWO: tl.constexpr, Y=None, STORE_Y: tl.constexpr = False):
    """DYG's rows are SDYG elements apart. TWO: O2 holds both scans' outputs, else their sum; DO_TWO: the sum's
    gradient is written for both scans, [2, NTOK, H, V] (the same for each), else once. STORE_Y: also the forward's
    gated output again, into Y (for the weight gradient of the projection that read it, which then keeps nothing)."""
    i_n, i_h = tl.program_id(0), tl.program_id(1)
    rows = i_n * BN + tl.arange(0, BN)
    m_r = rows < NTOK
    o, r, w, sg, m = _out_setup(O2, YG, SYG, WN, rows, m_r, i_h, NTOK, H, V, BV, EPS, TWO)
    n = o * r[:, None]
    if STORE_Y:
        py, _ = _head_rows(Y, rows, m_r, i_h, H, V, BV)
        tl.store(py, (n * w[None, :] * sg).to(Y.dtype.element_ty), mask=m)
    pdy, _ = _head_rows(DY, rows, m_r, i_h, H, V, BV)
    dy = tl.load(pdy, mask=m, other=0.0).to(tl.float32)
    dn = dy * w[None, :] * sg
    pg, _ = _head_rows_s(DYG, rows, m_r, i_h, V, SDYG, BV)
    tl.store(pg, (dy * n * w[None, :] * sg * (1.0 - sg)).to(DYG.dtype.element_ty), mask=m)
    do = r[:, None] * (dn - n * (tl.sum(dn * n, axis=1) / V)[:, None])
    po, _ = _head_rows(DO2, rows, m_r, i_h, H, V, BV)
    tl.store(po, do.to(DO2.dtype.element_ty), mask=m)  # the sum's gradient: the same for both scans
    if DO_TWO:
        tl.store(po + NTOK * H * V, do.to(DO2.dtype.element_ty), mask=m)
    cols = tl.arange(0, BV)
    # this program's dw: column (i_n, i_h) of the [V, programs * H] partials (a row sum ends it)
    tl.store(DWP + cols * (tl.num_programs(0) * H) + i_n * H + i_h, tl.sum(dy * n * sg, axis=0), mask=cols < V)


def _out_meta(H: int, V: int, ntok: int, eps: float):
    return (triton.cdiv(ntok, BLOCK_TOKENS), H), dict(BN=BLOCK_TOKENS, BV=max(16, triton.next_power_of_2(V)),
                                                       EPS=eps, num_warps=4)


def _out_launch(o2: Tensor, y_g: Tensor, weight: Tensor, eps: float, keep_sum: bool = False):
    """The gated output y [B, N, H * V]; with keep_sum (o2 both scans' outputs) (y, the scans' sum
    [B, N, H, V] in o2's dtype): what the backward keeps in place of o2, half its memory."""
    o2, (y_g, syg) = o2.contiguous(), _rows(y_g)
    B, N, H, V = o2.shape[-4:]
    y = o2.new_empty(B, N, H * V)
    keep_sum = keep_sum and o2.dim() == 5
    o = o2.new_empty(B, N, H, V) if keep_sum else None
    grid, meta = _out_meta(H, V, B * N, eps)
    _out_fwd[grid](o2, y_g, syg, weight, y, o, B * N, H, V, TWO=o2.dim() == 5, STORE_SUM=keep_sum, **meta)
    return (y, o) if keep_sum else y


@torch.library.custom_op("comba_vision::mixer_out", mutates_args=())
def _out_op(o2: Tensor, y_g: Tensor, weight: Tensor, eps: float, keep_sum: bool = True) -> tuple[Tensor, Tensor]:
    """(the gated output, and with keep_sum, for both scans' outputs o2, their sum, which the backward keeps in o2's
    place; else an empty tensor: a sum o2 is kept as it is, and without a backward nothing is)."""
    if o2.dim() == 5 and keep_sum:
        return _out_launch(o2, y_g, weight, eps, keep_sum=True)
    return _out_launch(o2, y_g, weight, eps), o2.new_empty(0)


@_out_op.register_fake
def _(o2, y_g, weight, eps, keep_sum=True):
    B, N, H, V = o2.shape[-4:]
    return o2.new_empty(B, N, H * V), o2.new_empty((B, N, H, V) if o2.dim() == 5 and keep_sum else (0,))


def _out_bwd_launch(o2: Tensor, y_g: Tensor, weight: Tensor, dy: Tensor, eps: float, dyg: Tensor | None = None,
                    do_two: bool | None = None, y: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """_out_bwd_op's work; dyg: where to write y_g's gradient (rows of a uniform stride), else a new tensor.
    o2: both scans' outputs or their sum; do_two: the sum's gradient for both scans, [2, B, N, H, V] (default:
    as o2 comes). y: a dense [B, N, H * V] tensor the forward's output is written into again."""
    o2, (y_g, syg), dy = o2.contiguous(), _rows(y_g), dy.contiguous()
    B, N, H, V = o2.shape[-4:]
    grid, meta = _out_meta(H, V, B * N, eps)
    do_two = o2.dim() == 5 if do_two is None else do_two
    do2 = o2.new_empty((2, B, N, H, V) if do_two else (B, N, H, V))
    dyg = y_g.new_empty(y_g.shape) if dyg is None else dyg
    dwp = torch.empty(V, grid[0] * H, device=o2.device, dtype=torch.float32)
    _out_bwd[grid](o2, y_g, syg, weight, dy, do2, dyg, _row_stride(dyg), dwp, B * N, H, V, TWO=o2.dim() == 5,
                   DO_TWO=do_two, Y=y, STORE_Y=y is not None, **meta)
    return do2, dyg, dwp.sum(-1)


@torch.library.custom_op("comba_vision::mixer_out_bwd", mutates_args=())
def _out_bwd_op(o: Tensor, y_g: Tensor, weight: Tensor, dy: Tensor, eps: float, two: bool
                ) -> tuple[Tensor, Tensor, Tensor]:
    """(d o2, d y_g, d weight as float32) from the scans' sum o; two: o2 was both scans' outputs, whose
    gradients [2, B, N, H, V] are then that of the sum twice."""
    return _out_bwd_launch(o, y_g, weight, dy, eps, do_two=two)


@_out_bwd_op.register_fake
def _(o, y_g, weight, dy, eps, two):
    return (o.new_empty((2, *o.shape) if two else o.shape), y_g.new_empty(y_g.shape),
            weight.new_empty(weight.shape, dtype=torch.float32))


def _out_setup_ctx(ctx, inputs, output):
    o2, y_g, weight, eps, _ = inputs
    ctx.mark_non_differentiable(output[1])
    ctx.set_materialize_grads(False)  # no zero-filled gradient for the kept sum
    ctx.two = o2.dim() == 5
    ctx.save_for_backward(output[1] if ctx.two else o2, y_g, weight)
    ctx.eps = eps


def _out_backward(ctx, dy, _):
    if dy is None:
        return None, None, None, None, None
    o, y_g, weight = ctx.saved_tensors
    do2, dyg, dw = _out_bwd_op(o, y_g, weight, dy.contiguous(), ctx.eps, ctx.two)
    return do2, dyg, dw.to(weight.dtype), None, None


_out_op.register_autograd(_out_backward, setup_context=_out_setup_ctx)


def mixer_out(o2: Tensor, y_g: Tensor, weight: Tensor, eps: float | None) -> Tensor:
    """mixer_out_torch's result from the fused Triton kernels (CUDA, or the CPU under TRITON_INTERPRET=1). o2:
    both scans' outputs [2, B, N, H, V], or their sum [B, N, H, V] (what the recompute mode keeps: half the
    memory)."""
    if not (o2.dim() == 5 and o2.shape[0] == 2 or o2.dim() == 4):
        raise ValueError(f"o2 must be both scans' outputs [2, B, N, H, V] or their sum [B, N, H, V], "
                         f"got {tuple(o2.shape)}")
    B, N, H, V = o2.shape[-4:]
    if tuple(y_g.shape) != (B, N, H * V):
        raise ValueError(f"y_g must be [B, N, H*V] = {(B, N, H * V)}, got {tuple(y_g.shape)}")
    if tuple(weight.shape) != (V,) or not weight.is_contiguous():
        raise ValueError(f"weight must be a contiguous [V] = [{V}] tensor, got shape {tuple(weight.shape)}")
    _check_offsets(o2.numel(), "o2")
    _check_rows(y_g, "y_g")
    # eps None: what F.rms_norm takes then, the machine epsilon of the activations' dtype
    backward = torch.is_grad_enabled() and any(t.requires_grad for t in (o2, y_g, weight))
    return _out_op(o2, y_g, weight, float(torch.finfo(o2.dtype).eps if eps is None else eps), backward)[0]
