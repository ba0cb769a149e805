"""The mixer's depthwise conv on token-major activations, as Triton kernels (one forward, two backward).

Why: in the CUDA-graphed Comba-T training step (H200, 224px, batch 128, session 8) cuDNN's depthwise 3x3 conv
took about 1.9 of 22.4 device-ms: forward, data and weight gradients 1.0 ms, the channels-last copies around
them 0.5 ms and the bias gradient 0.39 ms. The mixer's activations are token-major ([B, N, C], the conv's
input a column slice of the joint input projection's output), so every call transposed into the conv's
layout and back.

Here the conv reads the token-major input in place. Tokens form one or more row-major patch grids
("segments", as CombaMixer takes them: (height, width) each, one after the other); each grid is one launch,
whose programs take BLOCK_TOKENS tokens x BLOCK_CHANNELS channels and compute each token's grid position, so
the k x k window's taps are plain offsets n + dy * width + dx, masked at the grid's borders (zero padding).
With w[c, t] the weight of tap t = (dy + k // 2) * k + dx + k // 2 and n + t the token at that offset:

    out[n, c]  = bias[c] + sum_t w[c, t] a[n + t, c]
    da[n, c]   = sum_t w[c, k*k - 1 - t] dout[n + t, c]        (tap k*k - 1 - t is the offset -(dy, dx))
    dw[c, t]   = sum_n dout[n, c] a[n + t, c],    dbias[c] = sum_n dout[n, c]

Arithmetic is float32; out and da are rounded once to a's dtype. The backward of the 3 x 3 window is two
kernels: da is the forward kernel run on dout with the window flipped, and ``_dw_wgrad3`` keeps the nine taps'
products as elementwise accumulators over a run of token blocks, reducing over tokens once; other window sizes
take ``_dw_bwd`` (both gradients in one kernel, one reduction per tap and block). Each program's share of dw and
dbias goes to a column of a [k*k + 1, C, programs] float32 buffer that one ``sum(-1)`` finishes. The input's rows
may be any uniform stride apart (the projection's output is 584 wide for Comba-T): a stride that is a multiple of 8 is
declared to the compiler, which otherwise loads element by element.

H200 (session 9), Comba-T at 224px, batch 128, graphed training step: forward 30 us a layer, backward 95 us
(da 29, weight gradient 67), where cuDNN's forward, gradients, layout copies and bias gradient took about 158
(session 8). The whole step: 5698 images/s with cuDNN's conv against 5785 with the first Triton backward (one
call), then 5814 with _dw_bwd against 5905 with the two-kernel backward (a later call).
"""
from __future__ import annotations

import os

import torch
import triton
import triton.language as tl
from torch import Tensor

from .block_kernels import applies
from .mixer_fused import _check_rows, _row_stride, _rows
from .token_grid import _grid_rows, _tap

# H200, bf16, Comba-T / Comba-S at 224px (B = 128, 14 x 14 grid, C = 384 / 768), in CUDA graphs (session 11 sweep,
# docs/bench/2026-11-30-h200-s11/call4_blksweep.txt): _dw_fwd 31.4 -> 23.0 us / 62.6 -> 43.5 us against 64 x 64
# with four warps; the 3 x 3 backward 98.8 -> 78.4 / 165.0 -> 133.3 us with two warps for _dw_wgrad3
BLOCK_TOKENS = 32
BLOCK_CHANNELS = 128
# the 3 x 3 backward (COMBA_CONV_BWD3=0: the general kernel _dw_bwd instead): da from _dw_fwd with the window
# flipped, the weight gradient from _dw_wgrad3 in blocks of BWD3_TOKENS tokens, BWD3_ITERS of them a program
BWD3 = os.environ.get("COMBA_CONV_BWD3", "1") == "1"
BWD3_TOKENS, BWD3_ITERS = 16, 16
FWD_WARPS = 4                    # warps of _dw_fwd (and of the general _dw_bwd)
BWD3_CHANNELS, BWD3_WARPS = 64, 2  # channels and warps of a _dw_wgrad3 program


@triton.jit
def _dw_fwd(A, SA, Wt, BIAS, OUT, SO, NSEG, N, START, GH, GW, C, K: tl.constexpr, HAS_BIAS: tl.constexpr,
            ALIGNED: tl.constexpr, BN: tl.constexpr, BC: tl.constexpr, FLIP: tl.constexpr = False):
    """FLIP: the window turned by 180 degrees (tap t takes weight K * K - 1 - t): the data gradient. OUT's rows
    are SO elements apart."""
    i_n, i_c = tl.program_id(0), tl.program_id(1)
    row, m_r, y, x = _grid_rows(i_n, NSEG, N, START, GH, GW, BN)
    cols = i_c * BC + tl.arange(0, BC)
    m_c = cols < C
    acc = tl.zeros([BN, BC], dtype=tl.float32)
    for t in tl.static_range(K * K):
        w = tl.load(Wt + cols * (K * K) + (K * K - 1 - t if FLIP else t), mask=m_c, other=0.0).to(tl.float32)
        acc += _tap(A, SA, row, m_r, y, x, cols, m_c, GH, GW, t, K, ALIGNED) * w[None, :]
    if HAS_BIAS:
        acc += tl.load(BIAS + cols, mask=m_c, other=0.0).to(tl.float32)[None, :]
    tl.store(OUT + row[:, None] * SO + cols[None, :], acc.to(OUT.dtype.element_ty), mask=m_r[:, None] & m_c[None, :])


@triton.jit
def _dw_bwd(A, SA, Wt, DOUT, DA, DWP, PARTS, NSEG, N, START, GH, GW, C, K: tl.constexpr, ALIGNED: tl.constexpr,
            ALIGNED_C: tl.constexpr, BN: tl.constexpr, BC: tl.constexpr):
    i_n, i_c = tl.program_id(0), tl.program_id(1)
    row, m_r, y, x = _grid_rows(i_n, NSEG, N, START, GH, GW, BN)
    cols = i_c * BC + tl.arange(0, BC)
    m_c = cols < C
    m = m_r[:, None] & m_c[None, :]
    dout = tl.load(DOUT + row[:, None] * C + cols[None, :], mask=m, other=0.0).to(tl.float32)
    da = tl.zeros([BN, BC], dtype=tl.float32)
    part = DWP + cols * PARTS + i_n  # column i_n of the [K * K + 1, C, PARTS] partials
    for t in tl.static_range(K * K):
        tap = _tap(A, SA, row, m_r, y, x, cols, m_c, GH, GW, t, K, ALIGNED)
        tl.store(part + t * C * PARTS, tl.sum(dout * tap, axis=0), mask=m_c)
        w = tl.load(Wt + cols * (K * K) + (K * K - 1 - t), mask=m_c, other=0.0).to(tl.float32)
        da += _tap(DOUT, C, row, m_r, y, x, cols, m_c, GH, GW, t, K, ALIGNED_C) * w[None, :]
    tl.store(part + K * K * C * PARTS, tl.sum(dout, axis=0), mask=m_c)
    tl.store(DA + row[:, None] * C + cols[None, :], da.to(DA.dtype.element_ty), mask=m)


@triton.jit
def _dw_wgrad3(A, SA, DOUT, DWP, PARTS, NSEG, N, START, GH, GW, C, ALIGNED: tl.constexpr, BN: tl.constexpr,
               BC: tl.constexpr, ITERS: tl.constexpr):
    """The 3 x 3 window's weight and bias gradients: each program walks ITERS blocks of BN tokens and keeps the
    nine taps' products dout * a (and dout) as elementwise [BN, BC] accumulators, reducing over its tokens once
    at the end. (The data gradient is _dw_fwd run on dout with the window flipped.)"""
    i_p, i_c = tl.program_id(0), tl.program_id(1)
    cols = i_c * BC + tl.arange(0, BC)
    m_c = cols < C
    z = tl.zeros([BN, BC], dtype=tl.float32)
    s0, s1, s2, s3, s4, s5, s6, s7, s8, sb = z, z, z, z, z, z, z, z, z, z
    for it in range(ITERS):
        row, m_r, y, x = _grid_rows(i_p * ITERS + it, NSEG, N, START, GH, GW, BN)
        m = m_r[:, None] & m_c[None, :]
        dout = tl.load(DOUT + row[:, None] * C + cols[None, :], mask=m, other=0.0).to(tl.float32)
        sb += dout
        s0 += dout * _tap(A, SA, row, m_r, y, x, cols, m_c, GH, GW, 0, 3, ALIGNED)
        s1 += dout * _tap(A, SA, row, m_r, y, x, cols, m_c, GH, GW, 1, 3, ALIGNED)
        s2 += dout * _tap(A, SA, row, m_r, y, x, cols, m_c, GH, GW, 2, 3, ALIGNED)
        s3 += dout * _tap(A, SA, row, m_r, y, x, cols, m_c, GH, GW, 3, 3, ALIGNED)
        s4 += dout * _tap(A, SA, row, m_r, y, x, cols, m_c, GH, GW, 4, 3, ALIGNED)
        s5 += dout * _tap(A, SA, row, m_r, y, x, cols, m_c, GH, GW, 5, 3, ALIGNED)
        s6 += dout * _tap(A, SA, row, m_r, y, x, cols, m_c, GH, GW, 6, 3, ALIGNED)
        s7 += dout * _tap(A, SA, row, m_r, y, x, cols, m_c, GH, GW, 7, 3, ALIGNED)
        s8 += dout * _tap(A, SA, row, m_r, y, x, cols, m_c, GH, GW, 8, 3, ALIGNED)
    part = DWP + cols * PARTS + i_p  # column i_p of the [10, C, PARTS] partials
    CP = C * PARTS
    tl.store(part, tl.sum(s0, axis=0), mask=m_c)
    tl.store(part + CP, tl.sum(s1, axis=0), mask=m_c)
    tl.store(part + 2 * CP, tl.sum(s2, axis=0), mask=m_c)
    tl.store(part + 3 * CP, tl.sum(s3, axis=0), mask=m_c)
    tl.store(part + 4 * CP, tl.sum(s4, axis=0), mask=m_c)
    tl.store(part + 5 * CP, tl.sum(s5, axis=0), mask=m_c)
    tl.store(part + 6 * CP, tl.sum(s6, axis=0), mask=m_c)
    tl.store(part + 7 * CP, tl.sum(s7, axis=0), mask=m_c)
    tl.store(part + 8 * CP, tl.sum(s8, axis=0), mask=m_c)
    tl.store(part + 9 * CP, tl.sum(sb, axis=0), mask=m_c)


def _launches(B: int, C: int, segments: list[int], tokens: int | None = None, channels: int | None = None):
    """Per grid: (program grid, its first program's partial column, start token, height, width), with programs
    of ``tokens`` tokens (BLOCK_TOKENS) and ``channels`` channels (BLOCK_CHANNELS); and the programs (partial
    columns) in all."""
    tokens, channels = tokens or BLOCK_TOKENS, channels or BLOCK_CHANNELS
    out, start, p0 = [], 0, 0
    for h, w in zip(segments[::2], segments[1::2]):
        n = triton.cdiv(B * h * w, tokens)
        out.append(((n, triton.cdiv(C, channels)), p0, start, h, w))
        start, p0 = start + h * w, p0 + n
    return out, p0


def _meta(row_stride: int, k: int) -> dict:
    return dict(K=k, ALIGNED=row_stride % 8 == 0, BN=BLOCK_TOKENS, BC=BLOCK_CHANNELS, num_warps=FWD_WARPS)


@torch.library.custom_op("comba_vision::dwconv_tokens", mutates_args=())
def _dw_op(a: Tensor, weight: Tensor, bias: Tensor | None, segments: list[int]) -> Tensor:
    return _dw_launch(a, weight, bias, segments)


def _dw_launch(a: Tensor, weight: Tensor, bias: Tensor | None, segments: list[int]) -> Tensor:
    a, sa = _rows(a)
    B, N, C = a.shape
    out = a.new_empty(B, N, C)
    meta = _meta(sa, weight.shape[-1])
    for grid, _, start, h, w in _launches(B, C, segments)[0]:
        _dw_fwd[grid](a, sa, weight, bias if bias is not None else weight, out, C, B * h * w, N, start, h, w, C,
                      HAS_BIAS=bias is not None, **meta)
    return out


@_dw_op.register_fake
def _(a, weight, bias, segments):
    return a.new_empty(a.shape)


def _dw_bwd_launch(a: Tensor, weight: Tensor, dout: Tensor, segments: list[int], da: Tensor | None = None
                   ) -> tuple[Tensor, Tensor]:
    """_dw_bwd_op's work; da: where to write a's gradient (rows of a uniform stride, e.g. a column slice of the
    joint projection's gradient; the 3 x 3 path), else a new [B, N, C] tensor."""
    a, sa = _rows(a)
    dout = dout.contiguous()  # read as rows C apart
    B, N, C = a.shape
    k = weight.shape[-1]
    three = k == 3 and BWD3
    launches, parts = (_launches(B, C, segments, BWD3_TOKENS * BWD3_ITERS, BWD3_CHANNELS) if three
                       else _launches(B, C, segments))
    if da is not None and not three:  # the general kernel writes rows C apart: into its own tensor, then copied
        da_own, dwb = _dw_bwd_launch(a, weight, dout, segments)
        return da.copy_(da_own), dwb
    da = a.new_empty(B, N, C) if da is None else da
    # [taps + bias, C, programs]: each program writes one column; one row sum at the end (a column sum of the
    # transposed layout is several times slower in a CUDA graph)
    dwp = torch.empty(k * k + 1, C, parts, device=a.device, dtype=torch.float32)
    meta = _meta(sa, k)
    if three:  # da: the forward kernel on dout with the window flipped; then the weight gradient on its own
        for grid, _, start, h, w in _launches(B, C, segments)[0]:
            _dw_fwd[grid](dout, C, weight, weight, da, _row_stride(da), B * h * w, N, start, h, w, C, HAS_BIAS=False,
                          FLIP=True, **_meta(C, k))
    for grid, p0, start, h, w in launches:
        if three:
            _dw_wgrad3[grid](a, sa, dout, dwp[..., p0:], parts, B * h * w, N, start, h, w, C,
                             ALIGNED=meta["ALIGNED"],
                             BN=BWD3_TOKENS, BC=BWD3_CHANNELS, ITERS=BWD3_ITERS, num_warps=BWD3_WARPS)
        else:
            _dw_bwd[grid](a, sa, weight, dout, da, dwp[..., p0:], parts, B * h * w, N, start, h, w, C,
                          ALIGNED_C=C % 8 == 0,
                          **meta)
    return da, dwp.sum(-1)


@torch.library.custom_op("comba_vision::dwconv_tokens_bwd", mutates_args=())
def _dw_bwd_op(a: Tensor, weight: Tensor, dout: Tensor, segments: list[int]) -> tuple[Tensor, Tensor]:
    """(da, [k*k + 1, C] float32: the weight gradient by tap, then the bias gradient)."""
    return _dw_bwd_launch(a, weight, dout, segments)


@_dw_bwd_op.register_fake
def _(a, weight, dout, segments):
    k = weight.shape[-1]
    return a.new_empty(a.shape), a.new_empty(k * k + 1, a.shape[-1], dtype=torch.float32)


def _setup(ctx, inputs, output):
    a, weight, bias, segments = inputs
    ctx.save_for_backward(a, weight)
    ctx.has_bias = bias is not None
    ctx.segments = segments


def _conv_grads(dwb: Tensor, weight: Tensor) -> tuple[Tensor, Tensor]:
    """(the weight's gradient [C, 1, k, k] in its dtype, the bias's [C] in float32) from the backward's
    [k*k + 1, C] float32 sums: the taps' rows, then the bias's."""
    taps = weight.shape[-1] ** 2
    return dwb[:taps].t().reshape(weight.shape).to(weight.dtype), dwb[taps]


def _backward(ctx, dout):
    a, weight = ctx.saved_tensors
    da, dwb = _dw_bwd_op(a, weight, dout, ctx.segments)
    dw, db = _conv_grads(dwb, weight)
    return da, dw, db.to(weight.dtype) if ctx.has_bias else None, None


_dw_op.register_autograd(_backward, setup_context=_setup)


def dwconv_tokens(a: Tensor, weight: Tensor, bias: Tensor | None, segments) -> Tensor:
    """Depthwise k x k conv (stride 1, zero padding k // 2, as nn.Conv2d(C, C, k, padding=k // 2, groups=C))
    of token-major a [B, N, C] laid out as the row-major grids ``segments`` ([(h, w), ...] covering N; None:
    one row of N tokens). weight [C, 1, k, k], bias [C] or None. Returns [B, N, C] in a's dtype."""
    return _dw_op(a, weight.contiguous(), bias, conv_args(a, weight, bias, segments))


def conv_args(a: Tensor, weight: Tensor, bias: Tensor | None, segments) -> list[int]:
    """dwconv_tokens's checks of its arguments (ValueError naming what is wrong); returns the segments as the
    ops take them, [h0, w0, h1, w1, ...]."""
    if a.dim() != 3:
        raise ValueError(f"a must be [B, N, C], got shape {tuple(a.shape)}")
    B, N, C = a.shape
    k = weight.shape[-1]
    if weight.dim() != 4 or tuple(weight.shape) != (C, 1, k, k) or k % 2 != 1:
        raise ValueError(f"weight must be a depthwise [C, 1, k, k] = [{C}, 1, k, k] kernel with odd k, "
                         f"got {tuple(weight.shape)}")
    if bias is not None and tuple(bias.shape) != (C,):
        raise ValueError(f"bias must be [C] = [{C}], got {tuple(bias.shape)}")
    segments = [(int(h), int(w)) for h, w in (segments or [(1, N)])]
    if sum(h * w for h, w in segments) != N:
        raise ValueError(f"segments {list(segments)} do not cover the {N} tokens")
    _check_rows(a, "a", "conv kernels", "COMBA_FUSED_CONV")
    return [x for hw in segments for x in hw]


def dwconv_applies(x: Tensor, conv: torch.nn.Conv2d) -> bool:
    """Whether the mixer's conv takes this kernel: CUDA, a depthwise odd-sized stride-1 'same' conv, and
    ``COMBA_FUSED_CONV`` (graph | 1 | 0, as the blocks' other fused kernels: see ops.block_kernels)."""
    k = conv.kernel_size
    return (applies("COMBA_FUSED_CONV", x) and conv.groups == conv.in_channels == conv.out_channels
            and k[0] == k[1] and k[0] % 2 == 1 and conv.stride == (1, 1) and conv.padding == (k[0] // 2,) * 2
            and conv.dilation == (1, 1) and conv.padding_mode == "zeros")
