"""Token rows of row-major patch grids and the taps of a k x k window over them: the Triton helpers the depthwise
conv (ops.dwconv) and the mixer's prep kernels with the conv inside (ops.mixer_fused) share."""
from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _grid_rows(i_n, NSEG, N, START, GH, GW, BN: tl.constexpr):
    """Program i_n's BN rows of one grid (GH x GW tokens from token START of each of the batch's N-token
    sequences, NSEG = batch * GH * GW rows in all): their rows in the [batch * N] token rows, mask, y, x."""
    r = i_n * BN + tl.arange(0, BN)
    m_r = r < NSEG
    b = r // (GH * GW)
    i = r - b * (GH * GW)
    y = i // GW
    return b * N + START + i, m_r, y, i - y * GW


@triton.jit
def _tap(X, SX, row, m_r, y, x, cols, m_c, GH, GW, t: tl.constexpr, K: tl.constexpr, ALIGNED: tl.constexpr):
    """Rows of X (rows SX elements apart) at tap t = (dy + K // 2) * K + dx + K // 2 of the tokens (zeros
    outside their grid), float32."""
    dy: tl.constexpr = t // K - K // 2
    dx: tl.constexpr = t % K - K // 2
    ok = m_r & (y + dy >= 0) & (y + dy < GH) & (x + dx >= 0) & (x + dx < GW)
    off = (row + dy * GW + dx) * SX
    if ALIGNED:  # rows a multiple of 8 elements apart: 16-byte vector loads of the bf16 rows
        off = tl.multiple_of(off, 8)
    v = tl.load(X + off[:, None] + cols[None, :], mask=ok[:, None] & m_c[None, :], other=0.0)
    return v.to(tl.float32)
