"""A Linear layer whose bias gradient is one Triton column-sum kernel instead of PyTorch's ``sum(0)``.

Why: in a profile of a Comba-T training step on the H200 (224px, batch 128, bf16, session 8) the bias
gradients of the blocks' Linear layers, ``grad.sum(0)`` over [25088, 192 / 584 / 768] bf16 rows, took 2.3 ms
of the step: 49 us for a [25088, 192] sum that reads 9.6 MB (the memory system moves that in about 3 us).
DeiT-T spends the same 2.3 ms there.

``linear(x, w, b)`` computes F.linear in the forward (cuBLAS, bias in the GEMM's epilogue) and in the
backward dx = dy w and dw = dy^T x as two GEMMs, and db with ``bias_grad``: programs of [BR, BC] tiles each
sum a run of rows in float32 and write one column of a [C, programs] tensor; one small ``sum(-1)`` ends it.
Under autocast the inputs are cast to the autocast dtype first, as autocast does for F.linear; the parameters'
gradients come back in their own dtype from the GEMM (float32 output) and the column sum, with no cast kernels,
and ``cast_once`` makes the casts of many layers' weights one concatenation and one cast (H200, graphed Comba-T
training, session 21: 1033 -> 732 launches a step, 427.8 -> 435.4 images/s at 1024px).
"""
from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from contextlib import contextmanager

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


# ------------------------------------------------------------------ GELU before the layer, recomputed backward
# linear(h, w, b, act="gelu") is F.linear(gelu(h), w, b) keeping h only for the backward: an MLP's fc2 otherwise
# keeps gelu(h) as its input and the GELU keeps h, two [rows, hidden] tensors (Comba-T at 1024px: 75 MB an
# image of its 572). The backward forms gelu(h) again in the kernel that forms h's gradient, which reads h and
# the gradient anyway: one extra write.
_GELU_BLOCK = 4096


@triton.jit
def _gelu_bwd(H, DA, DH, A, N, BLOCK: tl.constexpr):
    """dh = da * gelu'(h) and a = gelu(h) (exact, erf form), float32 arithmetic, stored in DH's and A's dtypes."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = offs < N
    h = tl.load(H + offs, mask=m, other=0.0).to(tl.float32)
    da = tl.load(DA + offs, mask=m, other=0.0).to(tl.float32)
    cdf = 0.5 * (1.0 + tl.math.erf(h * 0.7071067811865476))
    pdf = tl.exp(-0.5 * h * h) * 0.3989422804014327
    tl.store(DH + offs, (da * (cdf + h * pdf)).to(DH.dtype.element_ty), mask=m)
    tl.store(A + offs, (h * cdf).to(A.dtype.element_ty), mask=m)


@torch.library.custom_op("comba_vision::gelu_bwd_recompute", mutates_args=())
def _gelu_bwd_op(h: Tensor, da: Tensor) -> tuple[Tensor, Tensor]:
    """(h's gradient da * gelu'(h), gelu(h)), both in h's dtype."""
    h, da = h.contiguous(), da.contiguous()
    dh, a = torch.empty_like(h), torch.empty_like(h)
    n = h.numel()
    if n:
        _gelu_bwd[(triton.cdiv(n, _GELU_BLOCK),)](h, da, dh, a, n, BLOCK=_GELU_BLOCK, num_warps=8)
    return dh, a


@_gelu_bwd_op.register_fake
def _(h, da):
    return h.new_empty(h.shape), h.new_empty(h.shape)  # dense, as the op's (it makes h contiguous first)


@torch.library.custom_op("comba_vision::gelu_bwd_recompute_", mutates_args=("h", "da"))
def _gelu_bwd_inplace_op(h: Tensor, da: Tensor) -> None:
    """_gelu_bwd_op in place, for an h that nothing else reads afterwards (contiguous h and da of one shape and
    dtype): da becomes h's gradient da * gelu'(h), h becomes gelu(h). Each element is read and written by the
    same program, so the two [rows, hidden] tensors of the out-of-place op are not allocated."""
    if h.shape != da.shape or h.dtype != da.dtype or not (h.is_contiguous() and da.is_contiguous()):
        raise ValueError(f"_gelu_bwd_inplace_op needs contiguous h and da of one shape and dtype, got "
                         f"{tuple(h.shape)} {h.dtype} and {tuple(da.shape)} {da.dtype}")
    n = h.numel()
    if n:
        _gelu_bwd[(triton.cdiv(n, _GELU_BLOCK),)](h, da, da, h, n, BLOCK=_GELU_BLOCK, num_warps=8)


def _gelu_grad(h: Tensor) -> Tensor:
    """gelu'(h) as differentiable PyTorch ops (double backward)."""
    return 0.5 * (1.0 + torch.erf(h * 0.7071067811865476)) + h * torch.exp(-0.5 * h * h) * 0.3989422804014327


# ------------------------------------------------------------------ a LayerNorm's weight and bias folded in
# linear(x^, W, c, fold=(w, b)) is F.linear(x^ * w + b, W, c) for the normalised rows x^ of a LayerNorm with weight
# w and bias b (ops.layer_norm's fold), computed as one GEMM of x^ with W diag(w) and the bias W b + c. The layer
# keeps x^ (the norm's kept tensor too) where the norm's output y = x^ w + b was kept as well. Backward, from the
# folded layer's own gradients dW' = dy^T x^ and dc = sum_rows dy:
#     dW = dW' diag(w) + dc b^T,   dw = sum_rows (dW' * W),   db = W^T dc,   dx^ = dy W diag(w)
# (the norm's backward takes dx^ as it is). Two small kernels a layer, each over [out, in].
_FOLD_BR = 32  # rows of W a program of _fold_fwd takes
_SLOTS = 4  # pieces the fold kernels read in place (more: stacked first)


@triton.jit
def _slots_load(P0, P1, P2, P3, E0, E1, E2, E3, rows, cols, mr, mc, K, ROW: tl.constexpr):
    """Rows of the pieces stacked by rows, read in place: piece i holds rows [E(i-1), Ei) (a None piece: zeros).
    ROW: the pieces are [rows, K] (a weight), else [rows] (a bias; cols, mc unused)."""
    lo = 0
    out = None
    for i in tl.static_range(4):
        P = P0 if i == 0 else P1 if i == 1 else P2 if i == 2 else P3
        E = E0 if i == 0 else E1 if i == 1 else E2 if i == 2 else E3
        if P is not None:
            m = mr & (rows >= lo) & (rows < E)
            if ROW:
                t = tl.load(P + (rows - lo)[:, None] * K + cols[None, :], mask=m[:, None] & mc[None, :],
                            other=0.0).to(tl.float32)
            else:
                t = tl.load(P + (rows - lo), mask=m, other=0.0).to(tl.float32)
            out = t if out is None else out + t
        lo = E
    return out


@triton.jit
def _fold_fwd(W0, W1, W2, W3, EW0, EW1, EW2, EW3, C0, C1, C2, C3, EC0, EC1, EC2, EC3, NW, NB, WC, BC, R, K,
              BR: tl.constexpr, BK: tl.constexpr, HAS_C: tl.constexpr):
    """WC = W diag(nw), BC = W nb + c (float32 arithmetic, stored in WC's and BC's dtype) for rows of W [R, K]
    given as pieces (W0..W3 up to row ends EW0..EW3, c likewise; a None piece is zero rows; HAS_C: some c piece is
    a tensor)."""
    rows = tl.program_id(0) * BR + tl.arange(0, BR)
    cols = tl.arange(0, BK)
    mr, mc = rows < R, cols < K
    w = _slots_load(W0, W1, W2, W3, EW0, EW1, EW2, EW3, rows, cols, mr, mc, K, True)
    nw = tl.load(NW + cols, mask=mc, other=0.0).to(tl.float32)
    nb = tl.load(NB + cols, mask=mc, other=0.0).to(tl.float32)
    tl.store(WC + rows[:, None] * K + cols[None, :], (w * nw[None, :]).to(WC.dtype.element_ty),
             mask=mr[:, None] & mc[None, :])
    bc = tl.sum(w * nb[None, :], axis=1)
    if HAS_C:
        bc += _slots_load(C0, C1, C2, C3, EC0, EC1, EC2, EC3, rows, cols, mr, mc, K, False)
    tl.store(BC + rows, bc.to(BC.dtype.element_ty), mask=mr)


@triton.jit
def _fold_bwd(DW, DC, W0, W1, W2, W3, EW0, EW1, EW2, EW3, NW, NB, PART, R, K, BR: tl.constexpr,
              BK: tl.constexpr):
    """In place DW [R, K] (dW' of the folded layer) -> dW' diag(nw) + dc nb^T on one [BR, BK] tile, and this row
    block's share of dnw = sum_rows dW' * W and dnb = W^T dc in PART [2, row blocks, K] (float32; W as _fold_fwd's
    pieces)."""
    cols = tl.program_id(0) * BK + tl.arange(0, BK)
    i_r = tl.program_id(1)
    rows = i_r * BR + tl.arange(0, BR)
    mc, mr = cols < K, rows < R
    m = mr[:, None] & mc[None, :]
    nw = tl.load(NW + cols, mask=mc, other=0.0).to(tl.float32)
    nb = tl.load(NB + cols, mask=mc, other=0.0).to(tl.float32)
    offs = rows[:, None] * K + cols[None, :]
    dw = tl.load(DW + offs, mask=m, other=0.0)
    w = _slots_load(W0, W1, W2, W3, EW0, EW1, EW2, EW3, rows, cols, mr, mc, K, True)
    dc = tl.load(DC + rows, mask=mr, other=0.0)
    tl.store(DW + offs, dw * nw[None, :] + dc[:, None] * nb[None, :], mask=m)
    nrb = tl.num_programs(1)
    tl.store(PART + i_r * K + cols, tl.sum(dw * w, axis=0), mask=mc)
    tl.store(PART + (nrb + i_r) * K + cols, tl.sum(dc[:, None] * w, axis=0), mask=mc)


def _slot_args(pieces: Sequence[Tensor | None], ends: Sequence[int]) -> list:
    """The fold kernels' piece arguments: _SLOTS pointers (None: zero rows, or an unused slot) and row ends."""
    pad = _SLOTS - len(pieces)
    return [*pieces, *([None] * pad), *ends, *([ends[-1] if ends else 0] * pad)]


def _as_slots(pieces: Sequence[Tensor | int]) -> tuple[list, list[int]]:
    """(pieces as contiguous float32-or-not tensors or None for zero rows, their cumulative row ends), stacked
    into one piece where there are more than _SLOTS."""
    if len(pieces) > _SLOTS:
        pieces = [stack_pieces(tuple(pieces))]
    ends, n = [], 0
    for p in pieces:
        n += _rows(p)
        ends.append(n)
    return [p.contiguous() if isinstance(p, Tensor) else None for p in pieces], ends


@torch.library.custom_op("comba_vision::fold_weights", mutates_args=())
def _fold_fwd_op(ws: list[Tensor | None], w_ends: list[int], cs: list[Tensor | None], c_ends: list[int],
                 nw: Tensor, nb: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """(W diag(nw), W nb + c) in dtype for W [R, K] and c [R] given as pieces (ws, cs: None for zero rows, each
    list at most _SLOTS long, their row ends w_ends, c_ends; no c pieces: zeros), nw and nb [K]."""
    R, K = w_ends[-1], nw.shape[0]
    wc = torch.empty(R, K, device=nw.device, dtype=dtype)
    bc = torch.empty(R, device=nw.device, dtype=dtype)
    if R:
        _fold_fwd[(triton.cdiv(R, _FOLD_BR),)](*_slot_args(ws, w_ends), *_slot_args(cs, c_ends), nw, nb, wc, bc,
                                               R, K, BR=_FOLD_BR, BK=triton.next_power_of_2(K),
                                               HAS_C=any(c is not None for c in cs), num_warps=4)
    return wc, bc


@_fold_fwd_op.register_fake
def _(ws, w_ends, cs, c_ends, nw, nb, dtype):
    return nw.new_empty(w_ends[-1], nw.shape[0], dtype=dtype), nw.new_empty(w_ends[-1], dtype=dtype)


@torch.library.custom_op("comba_vision::fold_grads", mutates_args=("dwp",))
def _fold_bwd_op(dwp: Tensor, dc: Tensor, ws: list[Tensor | None], w_ends: list[int], nw: Tensor,
                 nb: Tensor) -> Tensor:
    """[dnw; dnb] ([2, K]) from the folded layer's gradients dwp [R, K] (contiguous, float32; turned into dW in
    place) and dc [R] (float32), with W as _fold_fwd_op's pieces."""
    R, K = dwp.shape
    br, bk = 64, 64
    part = dwp.new_empty(2, triton.cdiv(R, br), K)
    _fold_bwd[(triton.cdiv(K, bk), triton.cdiv(R, br))](dwp, dc, *_slot_args(ws, w_ends), nw, nb, part, R, K, BR=br,
                                                         BK=bk, num_warps=4)
    return part.sum(1)  # [dnw; dnb]: one small reduction over the row blocks' shares (about 10 a layer)


@_fold_bwd_op.register_fake
def _(dwp, dc, ws, w_ends, nw, nb):
    return dwp.new_empty(2, dwp.shape[1])


def _fold_grads_torch(dwp: Tensor, dc: Tensor, w: Tensor, nw: Tensor, nb: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """_fold_bwd_op's results as differentiable PyTorch ops (double backward, and a reference)."""
    return dwp * nw + dc[:, None] * nb, (dwp * w).sum(0), dc @ w


ACTS = (None, "gelu")


def check_act(act: str | None) -> None:
    """ValueError unless act is one that linear takes (ACTS)."""
    if act not in ACTS:
        raise ValueError(f"act must be one of {ACTS}, got {act!r}")


Pieces = Sequence[Tensor | int]  # parameters stacked by rows; an int: that many zero rows


def _as_pieces(t: Tensor | Pieces | None) -> tuple | None:
    if t is None:
        return None
    pieces = (t,) if isinstance(t, Tensor) else tuple(t)
    if not any(isinstance(p, Tensor) for p in pieces):
        raise ValueError(f"a weight or bias given as pieces needs a tensor among them (for its dtype and shape), got "
                         f"{pieces}")
    return pieces


def _tensor_of(pieces: tuple) -> Tensor:
    return next(p for p in pieces if isinstance(p, Tensor))


def stack_pieces(t: Tensor | Pieces, dtype: torch.dtype | None = None) -> Tensor:
    """A weight or bias given as pieces stacked by rows (ints: zero rows, in the tensor pieces' dtype and trailing
    shape) as one tensor, through autograd, in dtype (None: the pieces'); one tensor piece as it is (no copy)."""
    pieces = _as_pieces(t)
    if len(pieces) == 1:
        out = pieces[0]
    else:
        ref = _tensor_of(pieces)
        out = torch.cat([p if isinstance(p, Tensor) else ref.new_zeros(p, *ref.shape[1:]) for p in pieces])
    return out if dtype is None else out.to(dtype)


def _rows(p: Tensor | int) -> int:
    return p if isinstance(p, int) else p.shape[0]


def _mm_as(a: Tensor, b: Tensor, dtype: torch.dtype) -> Tensor:
    """a @ b in dtype: half inputs and a float32 result on CUDA as one GEMM that writes float32 (torch.mm's
    out_dtype), not a GEMM and a cast."""
    if a.dtype == dtype:
        return a @ b
    if a.is_cuda and dtype == torch.float32 and a.dtype in (torch.bfloat16, torch.float16):
        return torch.mm(a, b, out_dtype=dtype)
    return (a @ b).to(dtype)


class _Linear(torch.autograd.Function):
    """F.linear(x, wc, bc) whose parameter gradients go to the pieces wc and bc are made of (n_w weight pieces,
    then the bias pieces; ints are zero rows, which get none), in the pieces' own dtype: float32 parameters under
    autocast get float32 gradients straight from the GEMM and the column sum, with no cast kernels either way.
    Under create_graph (double backward) the gradients are formed from the pieces through autograd instead.
    act "gelu": F.linear(gelu(x), wc, bc), keeping x and not gelu(x) (formed again in the backward). fold: the last
    two pieces are a LayerNorm's weight and bias folded into wc and bc (see _fold_fwd; x is then x^)."""

    @staticmethod
    def forward(ctx, x: Tensor, wc: Tensor, bc: Tensor | None, act: str | None, n_w: int, fold: bool,
                *pieces: Tensor | int) -> Tensor:
        ctx.save_for_backward(x, wc, *(p for p in pieces if isinstance(p, Tensor)))
        ctx.ints = [p if isinstance(p, int) else None for p in pieces]
        ctx.n_w, ctx.act, ctx.fold = n_w, act, fold
        ctx.grads = [isinstance(p, Tensor) and p.requires_grad for p in pieces]
        return F.linear(F.gelu(x) if act else x, wc, bc)

    @staticmethod
    def backward(ctx, dy: Tensor):
        x, wc, *tensors = ctx.saved_tensors
        it = iter(tensors)
        pieces = [next(it) if i is None else i for i in ctx.ints]
        fold = None
        if ctx.fold:
            *pieces, nw, nb = pieces
            fold = (nw, nb)
        n_w, grads = ctx.n_w, ctx.grads
        double = torch.is_grad_enabled()  # create_graph: every product through autograd, the weight's too
        dy2 = dy.reshape(-1, dy.shape[-1])
        x2 = x.reshape(-1, x.shape[-1])
        w32 = None
        if ctx.fold and double:
            w32 = stack_pieces(tuple(pieces[:n_w]), torch.float32)
        dx = None
        if ctx.needs_input_grad[0]:
            w = wc
            if double and ctx.fold:
                w = (w32 * nw).to(wc.dtype)
            elif double and any(grads[:n_w]):
                w = stack_pieces(tuple(pieces[:n_w]), wc.dtype)
            dx = dy2 @ w
            if ctx.act and double:
                dx, x2 = dx * _gelu_grad(x2), F.gelu(x2)
            elif ctx.act:
                dx, x2 = _gelu_bwd_op(x2, dx)  # and the layer's input gelu(x) again, for its weight's gradient
            dx = dx.view(*dy.shape[:-1], wc.shape[1])
        elif ctx.act:
            x2 = F.gelu(x2)
        return (dx, None, None, None, None, None, *piece_grads(dy2, x2, pieces, n_w, grads, double, fold, w32))


def piece_grads(dy2: Tensor, x2: Tensor, pieces: list, n_w: int, grads: list[bool], double: bool = False,
                fold: tuple[Tensor, Tensor] | None = None, w32: Tensor | None = None) -> list[Tensor | None]:
    """The parameter gradients of a Linear layer from its output's gradient dy2 [rows, out] and its input x2 [rows,
    in]: one for each of its pieces (the first n_w the weight's, then the bias's; ints get none), each in its own
    piece's dtype, then with fold (a LayerNorm's weight and bias folded in, see _fold_fwd) one for each of those;
    None where grads (one flag a piece, then fold's two) says none is wanted. double (create_graph): from
    differentiable PyTorch ops, with w32 the weight stacked in float32 under fold."""
    out = [None] * len(grads)
    if not any(grads):
        return out
    rows = [_rows(p) for p in pieces]
    dtypes = [_tensor_of(part).dtype if part else None for part in (pieces[:n_w], pieces[n_w:])]
    if fold is not None:
        return _folded_grads(dy2, x2, w32 if double else pieces[:n_w], *fold, rows, n_w, grads, dtypes, double)
    if double:
        fulls = (lambda: (dy2.t() @ x2).to(dtypes[0]),
                 lambda: dy2.sum(0, dtype=torch.promote_types(dy2.dtype, torch.float32)).to(dtypes[1]))
    else:
        fulls = (lambda: _mm_as(dy2.t(), x2, dtypes[0]), lambda: bias_grad(dy2).to(dtypes[1]))
    for (lo, hi), full in zip(((0, n_w), (n_w, len(rows))), fulls):
        if any(grads[lo:hi]):
            out[lo:hi] = _split(full(), rows[lo:hi], grads[lo:hi])
    return out


def _split(g: Tensor, rows: list[int], wanted: list[bool]) -> list[Tensor | None]:
    """Row views of g, one a piece of those rows (None where no gradient is wanted)."""
    parts = g[:sum(rows)].split(rows)
    return [d if want else None for d, want in zip(parts, wanted, strict=True)]


def _folded_grads(dy2: Tensor, x2: Tensor, w: Tensor | list, nw: Tensor, nb: Tensor, rows: list[int], n_w: int,
                  grads: list[bool], dtypes: list, double: bool) -> list[Tensor | None]:
    """The gradients of a folded layer's weight pieces, bias pieces (dtypes: theirs), and the norm's weight and bias
    (the last two of grads), from dW' = dy^T x^ and dc = sum_rows dy in float32 (see _fold_fwd). w: the weight
    stacked in float32 (double), else its pieces."""
    if double:
        dwp = (dy2.t() @ x2).float()
        dc = dy2.sum(0, dtype=torch.float32)
        dw, dnw, dnb = _fold_grads_torch(dwp, dc, w, nw, nb)
    else:
        dw = _mm_as(dy2.t(), x2, torch.float32).contiguous()
        dc = bias_grad(dy2)
        ws, w_ends = _as_slots(w)
        dnw, dnb = _fold_bwd_op(dw, dc, ws, w_ends, nw, nb)  # dw becomes the weight's gradient in place
    n = len(rows)
    out = _split(dw.to(dtypes[0]), rows[:n_w], grads[:n_w])
    if n > n_w:
        out += _split(dc.to(dtypes[1]), rows[n_w:], grads[n_w:n])
    return out + [dnw.to(nw.dtype) if grads[n] else None, dnb.to(nb.dtype) if grads[n + 1] else None]


_CASTS = threading.local()  # .table: {key: (pieces, their versions, stacked copy)} inside cast_once


def _key(pieces: tuple, dtype: torch.dtype) -> tuple:
    return (dtype, *(p if isinstance(p, int) else id(p) for p in pieces))


def _versions(pieces: tuple) -> tuple:
    return tuple(p if isinstance(p, int) else p._version for p in pieces)


def _stack(pieces: tuple, dtype: torch.dtype) -> Tensor:
    """The pieces stacked by rows (ints: zero rows) in dtype, outside autograd: from cast_once's copies where
    they hold them (the same tensors, not changed in place since: a hook may have), else made here (no copy for
    one piece already in dtype)."""
    hit = getattr(_CASTS, "table", {}).get(_key(pieces, dtype))
    if (hit is not None and all(a is b or isinstance(a, int) for a, b in zip(hit[0], pieces, strict=True))
            and hit[1] == _versions(pieces)):
        return hit[2]
    with torch.no_grad():
        return stack_pieces(pieces, dtype).detach()


def compute_copy(w: Tensor, dtype: torch.dtype) -> Tensor:
    """w in dtype outside autograd, from cast_once's copies where it holds them (else cast here; w itself if it is
    in dtype already), for an op that returns w's gradient itself."""
    return _stack((w,), dtype)


@contextmanager
def cast_once(groups: Sequence[Tensor | Pieces], dtype: torch.dtype):
    """Within this context ``linear`` takes the dtype copies of these weights and biases (each a Tensor, or the
    pieces stacked by rows, as linear takes them) from here, made by one concatenation and one cast for all of
    them, where each linear would cast its own (a kernel each, some 1.6 us in a CUDA graph, H200). Groups an outer
    context holds are served from there. Entered by CombaViT around its chained blocks and by each block around its
    forward (layers.comba_mixer.block_weight_casts), so that a recomputed block enters it again."""
    outer = getattr(_CASTS, "table", {})
    groups = [g for g in map(_as_pieces, groups) if _key(g, dtype) not in outer]  # an outer context's stay
    if not groups:
        yield
        return
    tails = [_tensor_of(g).shape[1:] for g in groups]
    with torch.no_grad():
        zero_n = max((p * math.prod(tail) for g, tail in zip(groups, tails) for p in g if isinstance(p, int)),
                     default=0)
        zeros = _tensor_of(groups[0]).new_zeros(zero_n) if zero_n else None
        flat_parts = [p.reshape(-1) if isinstance(p, Tensor) else zeros[:p * math.prod(tail)]
                      for g, tail in zip(groups, tails) for p in g]
        shapes = [(sum(_rows(p) for p in g), *tail) for g, tail in zip(groups, tails)]
        flat = torch.cat(flat_parts).to(dtype)
    table, offset = dict(outer), 0
    for g, shape in zip(groups, shapes, strict=True):
        n = math.prod(shape)
        table[_key(g, dtype)] = (g, _versions(g), flat[offset:offset + n].view(shape))
        offset += n
    prev, _CASTS.table = getattr(_CASTS, "table", None), table
    try:
        yield
    finally:
        if prev is None:
            del _CASTS.table
        else:
            _CASTS.table = prev


def linear(x: Tensor, w: Tensor | Pieces, b: Tensor | Pieces | None = None, act: str | None = None,
           fold: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """F.linear(x, w, b) with the bias gradient from ``bias_grad`` (CUDA, or the CPU under TRITON_INTERPRET=1).
    w (and b) may be pieces stacked by rows (ints: zero rows, e.g. padding), each piece getting its own gradient.
    Under autocast x and the parameters are cast to the autocast dtype, as autocast does for F.linear (the
    parameters once per cast_once context where one holds them), and the parameters' gradients come back in
    their own dtype. act "gelu": F.linear(F.gelu(x), w, b) (exact GELU, in x's dtype after the cast), keeping x
    for the backward but not gelu(x), which the backward forms again (an MLP's second layer: half its memory).

    fold (w_n, b_n), a LayerNorm's weight and bias: x is that norm's x^ (ops.layer_norm's fold) and the result is
    F.linear(x^ * w_n + b_n, w, b), from one GEMM with w diag(w_n) and the bias w b_n + b (formed in float32 from
    the parameters, then cast), w_n and b_n getting their gradients from this layer (not with act). The fold's
    kernels work in float32, so float64 parameters get float32 accuracy (about 1e-7) in the folded weight and bias
    and in the parameters' gradients."""
    check_act(act)
    dev = x.device.type
    wp, bp = _as_pieces(w), _as_pieces(b)
    if torch.is_autocast_enabled(dev):
        dt = torch.get_autocast_dtype(dev)
        x = x.to(dt)
    else:
        dt = _tensor_of(wp).dtype
    if fold is not None:
        nw, nb = _check_fold(fold, x, wp, act)
        wc, bc = _folded(wp, bp, nw, nb, dt)
        extra = (nw, nb)
    else:
        wc = _stack(wp, dt)
        bc = _stack(bp, dt) if bp is not None else None
        extra = ()
    with torch.autocast(dev, enabled=False):
        return _Linear.apply(x, wc, bc, act, len(wp), fold is not None, *wp, *(bp or ()), *extra)


def _check_fold(fold, x: Tensor, wp: tuple, act: str | None) -> tuple[Tensor, Tensor]:
    if act is not None:
        raise ValueError("linear: fold (a LayerNorm's weight and bias) takes no act")
    nw, nb = fold
    K = _tensor_of(wp).shape[-1]
    for name, t in (("weight", nw), ("bias", nb)):
        if not isinstance(t, Tensor) or tuple(t.shape) != (K,) or x.shape[-1] != K:
            raise ValueError(f"linear: fold needs the norm's {name} of shape ({K},) for input features {x.shape[-1]}, "
                             f"got {None if not isinstance(t, Tensor) else tuple(t.shape)}")
    return nw.contiguous(), nb.contiguous()


def _folded(wp: tuple, bp: tuple | None, nw: Tensor, nb: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """(w diag(nw), w nb + b) in dtype, outside autograd, from the pieces read in place (b None: zeros)."""
    with torch.no_grad():
        ws, w_ends = _as_slots(wp)
        cs, c_ends = _as_slots(bp) if bp is not None else ([], [])
        return _fold_fwd_op(ws, w_ends, cs, c_ends, nw, nb, dtype)


def fused_linear_applies(x: Tensor) -> bool:
    """Whether the blocks' Linear layers take ``linear`` for this activation (COMBA_FUSED_LINEAR; see
    ops.block_kernels: by default on CUDA inside fused_block_kernels(), i.e. in the package's CUDA graphs)."""
    return applies("COMBA_FUSED_LINEAR", x)
