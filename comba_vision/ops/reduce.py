"""Column sums of the small float32 [programs, D] partial-sum matrices that the fused kernels' backward passes
leave (LayerNorm's weight and bias gradients, the Linear bias gradient's first stage, the depthwise conv's
weight gradient, the mixer's per-head parameters), as one Triton launch.

Why: PyTorch's ``sum(0)`` over such a matrix ([784, 384] float32 for a Comba-T LayerNorm at 224px, batch 128)
took 17 us on the H200 (session 9 profile, 25 of them a step), for 1.2 MB; about 110 of these reductions a
graphed Comba-T training step took some 1.3 ms. Here each program owns a block of columns and walks all rows in
[BR, BC] tiles, adding elementwise, and reduces over rows once at the end. Summation order is fixed (no atomics),
so results are deterministic.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

_BR, _BC = 64, 32


@triton.jit
def _sum_rows(X, OUT, R, C, BR: tl.constexpr, BC: tl.constexpr):
    cols = tl.program_id(0) * BC + tl.arange(0, BC)
    m_c = cols < C
    acc = tl.zeros([BR, BC], dtype=tl.float32)
    for r0 in range(0, R, BR):
        rows = r0 + tl.arange(0, BR)
        acc += tl.load(X + rows[:, None] * C + cols[None, :], mask=(rows[:, None] < R) & m_c[None, :], other=0.0)
    tl.store(OUT + cols, tl.sum(acc, axis=0), mask=m_c)


def sum_rows(x: Tensor) -> Tensor:
    """x [R, *D] float32 summed over its first dimension: [*D] float32, as ``x.sum(0)``. Called from inside the
    fused kernels' custom ops (a CUDA tensor, or a CPU one under TRITON_INTERPRET=1)."""
    if x.dtype != torch.float32:
        raise ValueError(f"sum_rows takes float32 partial sums, got {x.dtype}")
    if x.numel() == 0 or x.numel() >= 2**31:
        return x.sum(0)
    R = x.shape[0]
    x2 = x.reshape(R, -1).contiguous()
    C = x2.shape[1]
    out = torch.empty(C, device=x.device, dtype=torch.float32)
    _sum_rows[(triton.cdiv(C, _BC),)](x2, out, R, C, BR=_BR, BC=_BC, num_warps=4)
    return out.view(x.shape[1:])
