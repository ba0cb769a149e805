"""A Linear layer whose bias gradient is one Triton column-sum kernel instead of PyTorch's ``sum(0)``.

Why: in a profile of a Comba-T training step on the H200 (224px, batch 128, bf16, session 8) the bias
gradients of the blocks' Linear layers, ``grad.sum(0)`` over [25088, 192 / 584 / 768] bf16 rows, took 2.3 ms
of the step: 49 us for a [25088, 192] sum that reads 9.6 MB (the memory system moves that in about 3 us).
DeiT-T spends the same 2.3 ms there.

``linear(x, w, b)`` computes F.linear in the forward (cuBLAS, bias in the GEMM's epilogue) and in the
backward dx = dy w and dw = dy^T x as two GEMMs, and db with ``bias_grad``: programs of [BR, BC] tiles each
sum a run of rows in float32 and write one column of a [C, programs] tensor; one small ``sum(-1)`` ends it.
Under autocast the inputs are cast to the autocast dtype first, as autocast does for F.linear.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
import triton
import triton.language as tl
from torch import Tensor

from .block_kernels import applies

# H200 sweep (session 11, bf16, the four bias gradients of a Comba-T / Comba-S block at 224px, batch 128, in CUDA
# graphs): 64-row steps and about 2048 programs, 76 -> 60 us (T) and 148 -> 100 us (S) against 32 rows and 1024
_BR, _BC = 64, 128   # tile of one step of a program: rows x columns
_PROGRAMS = 2048     # about this many programs a launch (H200: 132 multiprocessors)
_WARPS = 4


@triton.jit
def _colsum(DY, OUT, R, C, ROWS_PER: tl.constexpr, BR: tl.constexpr, BC: tl.constexpr):
    i_c, i_s = tl.program_id(0), tl.program_id(1)
    cols = i_c * BC + tl.arange(0, BC)
    acc = tl.zeros([BC], dtype=tl.float32)
    for r0 in range(0, ROWS_PER, BR):
        rows = i_s * ROWS_PER + r0 + tl.arange(0, BR)
        m = (rows[:, None] < R) & (cols[None, :] < C)
        acc += tl.sum(tl.load(DY + rows[:, None] * C + cols[None, :], mask=m, other=0.0).to(tl.float32), axis=0)
    tl.store(OUT + cols * tl.num_programs(1) + i_s, acc, mask=cols < C)  # column i_s of the [C, splits] partials


@torch.library.custom_op("comba_vision::bias_grad", mutates_args=())
def _bias_grad_op(dy: Tensor) -> Tensor:
    C = dy.shape[-1]
    dy2 = dy.reshape(-1, C).contiguous()
    R = dy2.shape[0]
    col_blocks = triton.cdiv(C, _BC)
    splits = max(1, min(triton.cdiv(R, _BR), _PROGRAMS // col_blocks))
    rows_per = triton.cdiv(triton.cdiv(R, splits), _BR) * _BR
    splits = triton.cdiv(R, rows_per)
    part = torch.empty(C, splits, device=dy.device, dtype=torch.float32)
    _colsum[(col_blocks, splits)](dy2, part, R, C, ROWS_PER=rows_per, BR=_BR, BC=_BC, num_warps=_WARPS)
    return part.sum(-1)  # a row sum: in a CUDA graph some 3 us where the column sum of [splits, C] took 11


@_bias_grad_op.register_fake
def _(dy):
    return dy.new_empty(dy.shape[-1], dtype=torch.float32)


def bias_grad(dy: Tensor) -> Tensor:
    """dy summed over every dimension but the last, in float32: a Linear layer's bias gradient."""
    if dy.numel() == 0 or dy.numel() >= 2**31:
        return dy.reshape(-1, dy.shape[-1]).float().sum(0)
    return _bias_grad_op(dy)


class _Linear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
        ctx.save_for_backward(x, w)
        ctx.has_bias = b is not None
        return F.linear(x, w, b)

    @staticmethod
    def backward(ctx, dy: Tensor):
        x, w = ctx.saved_tensors
        dy2 = dy.reshape(-1, dy.shape[-1])
        dx = dw = db = None
        if ctx.needs_input_grad[0]:
            dx = (dy2 @ w).view(*dy.shape[:-1], w.shape[1])
        if ctx.needs_input_grad[1]:
            dw = dy2.t() @ x.reshape(-1, x.shape[-1])
        if ctx.has_bias and ctx.needs_input_grad[2]:
            db = bias_grad(dy2).to(dy.dtype)
        return dx, dw, db


def _autocast_args(x: Tensor, w: Tensor, b: Tensor | None):
    """x, w, b cast to the autocast dtype when autocast is on for x's device (what autocast does for F.linear)."""
    dev = x.device.type
    if torch.is_autocast_enabled(dev):
        dt = torch.get_autocast_dtype(dev)
        return x.to(dt), w.to(dt), (b.to(dt) if b is not None else None)
    return x, w, b


def linear(x: Tensor, w: Tensor, b: Tensor | None = None) -> Tensor:
    """F.linear(x, w, b) with the bias gradient from ``bias_grad`` (CUDA, or the CPU under
    TRITON_INTERPRET=1)."""
    dev = x.device.type
    x, w, b = _autocast_args(x, w, b)
    with torch.autocast(dev, enabled=False):
        return _Linear.apply(x, w, b)


def fused_linear_applies(x: Tensor) -> bool:
    """Whether the blocks' Linear layers take ``linear`` for this activation (COMBA_FUSED_LINEAR; see
    ops.block_kernels: by default on CUDA inside fused_block_kernels(), i.e. in the package's CUDA graphs)."""
    return applies("COMBA_FUSED_LINEAR", x)
