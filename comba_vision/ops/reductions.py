"""The row sums that finish several two-stage reductions, in one launch.

The blocks' Triton kernels that reduce over tokens (a weight or bias gradient) write one partial column a program
and leave the last stage, a sum along each row of the partials, to a small PyTorch reduction: about 100 of them in a
graphed Comba-T training step at 1024px, 0.34 of its 18.7 device-ms on the H200 (session 20 profile), some 3 us
each, nearly all of it the launch's fixed cost. Where one autograd node finishes several of them (the mixer's
joint node: the conv's taps and bias, the output norm's weight, the per-head parameters), ``row_sums`` does them in
one launch: program row i of a [rows, cols] view (any two strides) sums its columns in float32.
"""
from __future__ import annotations

import os

import torch
import triton
import triton.language as tl
from torch import Tensor

_BR, _BP = 32, 128  # rows of a program, columns of a step
_MAX = 4  # views a launch


@triton.jit
def _rows_of(X, R, P, SR, SP, OUT, i_r, BR: tl.constexpr, BP: tl.constexpr):
    """Rows i_r * BR .. of X [R, P] (strides SR, SP) summed into OUT [R] (nothing past the view's rows)."""
    if i_r * BR < R:
        rows = i_r * BR + tl.arange(0, BR)
        acc = tl.zeros([BR], dtype=tl.float32)
        for p0 in range(0, P, BP):
            cols = p0 + tl.arange(0, BP)
            m = (rows[:, None] < R) & (cols[None, :] < P)
            acc += tl.sum(tl.load(X + rows[:, None] * SR + cols[None, :] * SP, mask=m, other=0.0).to(tl.float32),
                          axis=1)
        tl.store(OUT + rows, acc, mask=rows < R)


@triton.jit
def _row_sums(X0, R0, P0, SR0, SP0, O0, X1, R1, P1, SR1, SP1, O1, X2, R2, P2, SR2, SP2, O2, X3, R3, P3, SR3, SP3, O3,
              BR: tl.constexpr, BP: tl.constexpr):
    """Program (i_r, j): block i_r of view j's rows (programs past a view's rows do nothing)."""
    i_r, j = tl.program_id(0), tl.program_id(1)
    if j == 0:
        _rows_of(X0, R0, P0, SR0, SP0, O0, i_r, BR, BP)
    elif j == 1:
        _rows_of(X1, R1, P1, SR1, SP1, O1, i_r, BR, BP)
    elif j == 2:
        _rows_of(X2, R2, P2, SR2, SP2, O2, i_r, BR, BP)
    else:
        _rows_of(X3, R3, P3, SR3, SP3, O3, i_r, BR, BP)


def row_sums(*views: Tensor) -> list[Tensor]:
    """Each 2-D view's sums along its rows (``v.sum(-1)`` in float32), up to four views a launch (more take more
    launches). CUDA, or the CPU under TRITON_INTERPRET=1; other views (another device than the first view's, the
    CPU without the interpreter, empty ones, ones whose offsets reach past int32) get PyTorch's sum."""
    outs: list[Tensor | None] = [None] * len(views)
    todo = []
    for i, v in enumerate(views):
        if v.dim() != 2:
            raise ValueError(f"row_sums takes 2-D views, got shape {tuple(v.shape)}")
        reach = 1 + sum((n - 1) * abs(st) for n, st in zip(v.shape, v.stride())) if v.numel() else 0
        runs = v.device.type == "cuda" or os.environ.get("TRITON_INTERPRET") == "1"
        if v.numel() == 0 or reach >= 2**31 or v.device != views[0].device or not runs:
            outs[i] = v.float().sum(-1)
        else:
            todo.append(i)
    for k in range(0, len(todo), _MAX):
        group = todo[k:k + _MAX]
        args = []
        for i in group:
            v = views[i]
            outs[i] = torch.empty(v.shape[0], device=v.device, dtype=torch.float32)
            args += [v, v.shape[0], v.shape[1], v.stride(0), v.stride(1), outs[i]]
        while len(args) < 6 * _MAX:  # unused slots: the first view again, never read (no program takes them)
            args += args[:6]
        rows = max(views[i].shape[0] for i in group)
        _row_sums[(triton.cdiv(rows, _BR), len(group))](*args, BR=_BR, BP=_BP)
    return outs
