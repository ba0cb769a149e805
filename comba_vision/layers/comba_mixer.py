"""Bidirectional Comba token mixer and the pre-norm block built on it.

Mixer, for tokens x [B, N, C] laid out as one or more row-major patch grids ("segments"):

    q, k, v = SiLU(DWConv3x3(W_qkv x))       depthwise 3x3 on each patch grid (images are not causal)
    q, k    = L2-normalised per head;  p = sigmoid(b) k  (feedback key);  q~ = q - d k  (output correction)
    g       = -exp(A_log) * softplus(W_a x + c)      (log alpha; alpha starts close to 1)
    beta    = sigmoid(W_b x)
    o       = comba(q~, k, v, p, g, beta) + comba(..., reverse=True)     both scan directions, summed
    y       = W_o (RMSNorm_head(o) * sigmoid(W_g x))

With ``recompute=True`` (model kwarg ``mixer_recompute``) a training forward keeps only the mixer's input
and what the operator itself keeps; the projections, conv, SiLU, norms and gates around the operator run
again in the backward (torch.utils.checkpoint), which about halves the mixer's saved activations.

Per-head trainable scalars: A_log (a = exp(A_log)), dt_bias (c), b_logit (b = sigmoid), d.
Keys and queries use half the value width per head (K = V / 2 by default), which is what puts Comba-T/S
on the paper's parameter and MAC budgets (docs/ARCHITECTURE.md).
"""
from __future__ import annotations

import math
import os
from contextlib import contextmanager, nullcontext
from typing import NamedTuple

import torch
import torch.nn as nn
from timm.layers import DropPath, Mlp
from torch.utils.checkpoint import checkpoint

from ..ops import comba_bidirectional
from ..ops.dwconv import dwconv_applies, dwconv_tokens
from ..ops.layer_norm import fused_norm_applies
from ..ops.linear import cast_once, fused_linear_applies, linear
from ..ops.mixer_fused import (
    fused_applies,
    mixer_out,
    mixer_out_torch,
    mixer_prep,
    mixer_prep_torch,
    mixer_scan,
    mixer_scan_applies,
)
from ..ops.mixer_joint import mixer_joint, mixer_joint_applies
from ..ops.mlp import mlp as mlp_op
from .fused import FusedLayerNorm, FusedLinear, block_linear, fuse_linears, watched

Segments = list[tuple[int, int]]
# the joint input projection's output width is padded to a multiple of this (see CombaMixer._in_proj);
# COMBA_IN_PROJ_ALIGN=1 turns the padding off
IN_PROJ_ALIGN = max(1, int(os.environ.get("COMBA_IN_PROJ_ALIGN", "8")))
# COMBA_BRANCH_BIAS_IN_NORM (default "1" since session 21; "0" keeps the biases in the GEMMs): in the chained blocks
# (CombaBlock.forward_pending), the biases of the two Linear layers that end the residual branches (the mixer's
# proj and the MLP's fc2) are added by the fused LayerNorm that takes the branch (add_layer_norm's rb), whose
# backward sums their gradients from the pass it makes anyway: no column-sum kernel and row sum for them (24 of the
# 48 bias-gradient kernels and 24 small reductions of a Comba-T step). Where a dropout or a drop path follows the
# Linear layer, or hooks watch it, its bias stays in the GEMM. H200, graphed Comba-T training (session 21): 420.6 ->
# 427.8 images/s at 1024px, 102.7 -> 104.4 at 2048px.
BRANCH_BIAS_IN_NORM = os.environ.get("COMBA_BRANCH_BIAS_IN_NORM", "1") == "1"
# The MLP's fc2 takes its GELU inside (ops.linear's act="gelu") where its bias goes to the norm (above): it keeps
# fc1's output h for the backward and not gelu(h), which the kernel that forms h's gradient writes again. One
# [tokens, hidden] tensor less a block (Comba-T at 1024px: 75 of 572 MB an image kept for the backward).
GELU_RECOMPUTE = os.environ.get("COMBA_GELU_RECOMPUTE", "1") == "1"
# Where fc2 takes its GELU inside and leaves its bias to the norm, and fc1 is a plain (or fused) unwatched Linear
# layer that takes ops.linear: the whole MLP as one node that keeps only its input and forms fc1's output again in
# the backward (ops.mlp; Comba-T at 1024px: 1536 bytes a token and block less, for one more fc1 GEMM a block).
MLP_RECOMPUTE = os.environ.get("COMBA_MLP_RECOMPUTE", "1") == "1"
# The mixer's output projection inside its joint node (ops.mixer_joint's proj_w) where its bias goes to the norm:
# the node's backward writes the projection's input again (the output kernel's backward has every factor of it), so
# nothing keeps it (Comba-T: 384 bytes a token and block).
PROJ_IN_JOINT = os.environ.get("COMBA_PROJ_IN_JOINT", "1") == "1"


class Branch(NamedTuple):
    """A residual branch not yet added to the stream: out, plus bias ([C], the bias of the Linear layer that made
    out, not yet added; None: out is the branch)."""
    out: torch.Tensor
    bias: torch.Tensor | None = None

    def merged(self) -> torch.Tensor:
        return self.out if self.bias is None else self.out + self.bias


def _unbiased(lin: nn.Linear, dropout: nn.Module, x: torch.Tensor, defer: bool = True,
              gelu: nn.Module | None = None) -> Branch:
    """dropout(lin(x)) as a Branch whose bias is left out where defer and BRANCH_BIAS_IN_NORM allow it: a plain (or
    fused) Linear layer with a bias (a subclass's own forward is never bypassed), the dropout off (p = 0 or eval
    mode), no hooks on either or global ones, and the fused LayerNorm in use (which adds the bias for free;
    PyTorch's norm would need an add of its own); else the whole result. gelu (an exact nn.GELU): of gelu(x),
    which the layer then does not keep for its backward where the bias is left out (GELU_RECOMPUTE)."""
    if defer and _defers_bias(lin, dropout, x):
        return Branch(block_linear(x, lin.weight, act="gelu" if gelu is not None else None), lin.bias)
    return Branch(dropout(lin(x if gelu is None else gelu(x))))


def _defers_bias(lin: nn.Linear, dropout: nn.Module, x: torch.Tensor) -> bool:
    """Whether the Linear layer lin, followed by dropout, may leave its bias to the norm that takes its branch (see
    _unbiased)."""
    return (BRANCH_BIAS_IN_NORM and type(lin) in (nn.Linear, FusedLinear) and lin.bias is not None
            and not (watched() or watched(lin) or watched(dropout)) and fused_norm_applies(x)
            and (not dropout.training or getattr(dropout, "p", 0.0) == 0))


def _fc1_direct(mlp: nn.Module, x: torch.Tensor) -> bool:
    """Whether the MLP's fc1 may be bypassed as a module and run as ops.linear on x (a fold, the MLP node): an
    unwatched plain or fused Linear layer, and the fused Linear applies."""
    fc1 = getattr(mlp, "fc1", None)
    return type(fc1) in (nn.Linear, FusedLinear) and not watched(fc1) and fused_linear_applies(x)


def _in_proj_pad(width: int, x: torch.Tensor) -> int:
    """Zero rows appended to the joint input projection of this width for input x."""
    return (-width) % IN_PROJ_ALIGN

# MAC counting mode (see comba_vision.models.comba_vit.count_macs): the recurrence is then not run but
# counted by formula, so that a FLOP counter sees only the projections, convolutions and MLPs.
_COUNTER: list[int] | None = None


@contextmanager
def count_recurrence_macs():
    """Within this context mixers skip the recurrence and add its MACs to the yielded one-element list."""
    global _COUNTER
    prev, _COUNTER = _COUNTER, [0]
    try:
        yield _COUNTER
    finally:
        _COUNTER = prev


def recurrence_macs(B: int, N: int, H: int, K: int, V: int, directions: int = 2) -> int:
    """Multiply-adds of the Comba recurrence in its step form, per direction and token and head:
    feedback S^T p (K*V), state update k u^T (K*V), output S^T q (K*V). Gates and decays are O(K + V)
    and not counted, as fvcore does not count elementwise work."""
    return 3 * B * N * H * K * V * directions


def _check_segments(N: int, segments: Segments | None) -> Segments | None:
    if segments is None:
        return None
    total = sum(h * w for h, w in segments)
    if total != N:
        raise ValueError(f"segments {segments} cover {total} tokens but the sequence has {N}")
    return segments


class CombaMixer(nn.Module):
    def __init__(
        self,
        dim: int,
        num_heads: int,
        head_dim_k: int | None = None,
        qkv_bias: bool = True,
        conv_size: int = 3,
        variant: str = "splr",
        d_init: float = 1.0,
        b_init: float = 0.0,
        dt_min: float = 1e-3,
        dt_max: float = 0.1,
        proj_drop: float = 0.0,
        recompute: bool = False,
    ):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        if variant not in ("splr", "iplr"):
            raise ValueError(f"variant must be 'splr' or 'iplr', got {variant!r}")
        self.num_heads = H = num_heads
        self.head_dim_v = V = dim // num_heads
        self.head_dim_k = K = head_dim_k or max(V // 2, 1)
        self.variant = variant
        # recompute: keep only the mixer's input (and the operator's own saved tensors) for the backward and
        # recompute the cheap parts around the operator (projections, conv, SiLU, norms, gates) there
        self.recompute = recompute
        self.qkv_dims = (H * K, H * K, H * V)
        width = sum(self.qkv_dims)
        self.qkv = nn.Linear(dim, width, bias=qkv_bias)
        self.conv = nn.Conv2d(width, width, conv_size, padding=conv_size // 2, groups=width, bias=True)
        self.gates = nn.Linear(dim, 2 * H, bias=True)  # W_a x (forget) and W_b x (input gate)
        self.out_gate = FusedLinear(dim, dim, bias=True)
        self.o_norm = nn.RMSNorm(V, eps=1e-5)
        self.proj = FusedLinear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self.A_log = nn.Parameter(torch.zeros(H))
        dt = torch.exp(torch.linspace(math.log(dt_min), math.log(dt_max), H))
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))  # softplus^-1(dt)
        self.b_logit = nn.Parameter(torch.full((H,), float(b_init)))
        self.d = nn.Parameter(torch.full((H,), float(d_init)))
        for lin in (self.qkv, self.gates, self.out_gate, self.proj):
            nn.init.trunc_normal_(lin.weight, std=0.02)
            if lin.bias is not None:
                nn.init.zeros_(lin.bias)

    def _conv(self, x: torch.Tensor, segments: Segments | None) -> torch.Tensor:
        """Depthwise conv on each segment's patch grid; a sequence with no grid is treated as one row. On CUDA
        inside the package's CUDA graphs (COMBA_FUSED_CONV) one Triton kernel on the token-major x
        (comba_vision.ops.dwconv), else nn.Conv2d on each grid."""
        if dwconv_applies(x, self.conv):
            return dwconv_tokens(x, self.conv.weight, self.conv.bias, segments)
        B, N, C = x.shape
        segments = segments or [(1, N)]
        outs, start = [], 0
        for h, w in segments:
            t = x[:, start:start + h * w].transpose(1, 2).reshape(B, C, h, w)
            outs.append(self.conv(t).flatten(2).transpose(1, 2))
            start += h * w
        return torch.cat(outs, dim=1) if len(outs) > 1 else outs[0]

    def _in_proj(self, x: torch.Tensor, out_gate: bool = True):
        """W_qkv x, the gate logits W_[a;b] x and (out_gate) the output-gate logits W_g x as one GEMM: the
        Linear modules' weights side by side (one launch and one pass over x, forward and backward).

        The joint width is padded with zero rows to a multiple of IN_PROJ_ALIGN. On CUDA, Comba-T's 582 output
        columns made rows 1164 bytes apart, which cuBLAS cannot feed to Hopper's tensor-memory kernels, so
        all three GEMMs ran as Ampere-generation kernels (H200 profile, session 7). On the CPU the 582-wide
        GEMM took 4.75 ms against 3.30 for 584 (session 8, this repository's 2-core host)."""
        w, b, parts = self._joint_weight(x, out_gate)
        out = block_linear(x, w, b).split(parts, dim=-1)
        return (out[0], out[2], out[1]) if out_gate else (out[0], out[1])

    def _joint_weight(self, x: torch.Tensor, out_gate: bool = True):
        """(weight, bias, column widths) of the joint input projection, weight and bias as pieces stacked by rows
        (ops.linear.Pieces): the qkv, (out_gate) output-gate and gate Linear layers side by side, then the zero
        padding _in_proj_pad asks for (and zero rows for a missing bias). The output gate's H * V columns
        come before the gate's 2H, so that they start 16 bytes aligned in each row where 2HK + HV and the padded
        row width are multiples of 8 (Comba-T and Comba-S): the output kernels then read and write them as
        vectors (ops.mixer_joint)."""
        lins = (self.qkv, self.out_gate, self.gates) if out_gate else (self.qkv, self.gates)
        widths = [m.out_features for m in lins]
        ws = [m.weight for m in lins]
        bs = [m.bias if m.bias is not None else m.out_features for m in lins]
        pad = _in_proj_pad(sum(widths), x)
        if pad:
            ws.append(pad)
            bs.append(pad)
        return ws, bs, widths + ([pad] if pad else [])

    def _joint(self, x: torch.Tensor, segments: Segments | None, defer: bool,
               fold: FusedLayerNorm | None = None) -> Branch:
        """Everything between the two projections as one autograd node on the joint projection's output
        (ops.mixer_joint: its backward writes that output's gradient in one piece, no concatenation). fold: x is x^
        of this norm, whose weight and bias the joint projection takes folded in."""
        w, b, _ = self._joint_weight(x)
        fold = None if fold is None else (fold.weight, fold.bias)
        # the output projection inside the node where its bias goes to the norm (PROJ_IN_JOINT)
        proj = PROJ_IN_JOINT and defer and _defers_bias(self.proj, self.proj_drop, x)
        out = mixer_joint(linear(x, w, b, fold=fold), self.conv.weight, self.conv.bias, self.A_log, self.dt_bias,
                          self.b_logit, self.d, self.o_norm.weight, self.num_heads, self.head_dim_k, self.head_dim_v,
                          _check_segments(x.shape[1], segments), self.variant, eps=self.o_norm.eps,
                          proj_w=self.proj.weight if proj else None)
        return Branch(out, self.proj.bias) if proj else _unbiased(self.proj, self.proj_drop, out, defer)

    def _conv_and_gates(self, x: torch.Tensor, segments: Segments | None, out_gate: bool = True):
        """The prep's inputs: (conv output c, the gate logits z, its per-head parameters and sizes), and the
        output-gate logits when out_gate."""
        a, z, *y_g = self._in_proj(x, out_gate)
        c = self._conv(a, _check_segments(x.shape[1], segments))
        return (c, z, self.A_log, self.dt_bias, self.b_logit, self.d, self.num_heads, self.head_dim_k,
                self.head_dim_v), y_g

    def _prepare(self, x: torch.Tensor, segments: Segments | None, out_gate: bool = True):
        """(q~, k, v, p, g, beta[, output-gate logits]). On CUDA everything after the conv and the projection
        is one fused kernel (comba_vision.ops.mixer_fused; COMBA_FUSED_MIXER=0 gives the PyTorch ops back)."""
        args, y_g = self._conv_and_gates(x, segments, out_gate)
        return (*(mixer_prep(*args) if fused_applies(args[0]) else mixer_prep_torch(*args)), *y_g)

    def scan_inputs(self, x: torch.Tensor, segments: Segments | None = None):
        """q~, k, v, p, g, beta for the operator, each [B, N, H, *] or [B, N, H] (g, beta float32: the log
        decay loses too much in bf16)."""
        return self._prepare(x, segments)[:6]

    def bidirectional(self, q, k, v, p, g, beta):
        """Both scan directions over the token order: returns (forward, reverse) outputs, [B, N, H, V]."""
        return comba_bidirectional(q, k, v, p, g, beta, variant=self.variant, merge="none")

    def _output(self, o2: torch.Tensor, y_g: torch.Tensor, defer: bool = False) -> Branch:
        """y = W_o (RMSNorm_head(o_fwd + o_rev) * sigmoid(W_g x)) from both scans o2 [2, B, N, H, V] (one fused
        kernel on CUDA) or their sum [B, N, H, V] (PyTorch ops), W_o's bias left out where _unbiased allows."""
        args = (o2, y_g, self.o_norm.weight, self.o_norm.eps)
        y = mixer_out(*args) if fused_applies(o2) else mixer_out_torch(*args)
        return _unbiased(self.proj, self.proj_drop, y, defer)

    def _output_from_x(self, o2: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """_output with the output gate's own projection of x: what recompute runs under checkpoint, so that
        it keeps x (kept anyway) rather than a slice of the joint projection's output (and with it all of it)."""
        return self._output(o2, self.out_gate(x)).merged()

    def forward(self, x: torch.Tensor, segments: Segments | None = None) -> torch.Tensor:
        return self.forward_branch(x, segments, defer=False).merged()

    def joint_applies(self, x: torch.Tensor) -> bool:
        """Whether forward_branch takes the joint node (_joint) for input x (training on CUDA, the fused kernels)."""
        recompute = self.recompute and torch.is_grad_enabled() and _COUNTER is None
        return (not recompute and torch.is_grad_enabled() and _COUNTER is None and fused_linear_applies(x)
                and mixer_joint_applies(x, self.conv))

    def forward_branch(self, x: torch.Tensor, segments: Segments | None = None, defer: bool = True,
                       fold: FusedLayerNorm | None = None) -> Branch:
        """forward's result as a Branch: with defer and COMBA_BRANCH_BIAS_IN_NORM the output projection's bias apart
        (see _unbiased), for the LayerNorm that takes the branch to add (CombaBlock.forward_pending). fold: x is x^
        of this norm (FusedLayerNorm.normed), taken by the joint node's projection with the norm's weight and bias
        folded in where joint_applies, else made the norm's output first."""
        B, N, C = x.shape
        recompute = self.recompute and torch.is_grad_enabled() and _COUNTER is None
        if fold is not None and self.joint_applies(x):
            return self._joint(x, segments, defer, fold)
        x = fold.unfold(x) if fold is not None else x
        if recompute:
            q, k, v, p, g, beta = checkpoint(self._prepare, x, segments, False, use_reentrant=False)
        else:
            # training on CUDA: the conv, prep, both scans and the output gate as one autograd node
            if self.joint_applies(x):
                return self._joint(x, segments, defer)
            args, (y_g,) = self._conv_and_gates(x, segments)
            # training on CUDA: the prep and both scans as one autograd node (mixer_fused.mixer_scan)
            if torch.is_grad_enabled() and _COUNTER is None and mixer_scan_applies(args[0]):
                return self._output(mixer_scan(*args, variant=self.variant), y_g, defer)
            q, k, v, p, g, beta = mixer_prep(*args) if fused_applies(args[0]) else mixer_prep_torch(*args)
        # both scans as one [2, B, N, H, V] tensor for the fused output kernel (no pass to sum them), else, and
        # under recompute (whose checkpoint keeps the output kernel's input: the sum is half the memory), summed;
        # the sum is then rounded to the scans' dtype (bf16 under autocast) before the norm, where the
        # two-scan kernel adds in float32: recompute and plain runs differ by that rounding
        stack = fused_applies(v) and not recompute
        if _COUNTER is not None:
            _COUNTER[0] += recurrence_macs(B, N, self.num_heads, self.head_dim_k, self.head_dim_v)
            o2 = torch.stack((v, v)) if stack else v + v
        else:
            o2 = comba_bidirectional(q, k, v, p, g, beta, variant=self.variant, merge="stack" if stack else "sum")
        if recompute:
            return Branch(checkpoint(self._output_from_x, o2, x, use_reentrant=False))
        return self._output(o2, y_g, defer)


class CombaBlock(nn.Module):
    """Pre-norm residual block: x + DropPath(mixer(LN(x))), then x + DropPath(MLP(LN(x)))."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        proj_drop: float = 0.0,
        drop_path: float = 0.0,
        norm_layer=nn.LayerNorm,
        act_layer=nn.GELU,
        **mixer_kwargs,
    ):
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.mixer = CombaMixer(dim, num_heads, qkv_bias=qkv_bias, proj_drop=proj_drop, **mixer_kwargs)
        self.drop_path1 = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=act_layer, drop=proj_drop)
        fuse_linears(self.mlp.fc1, self.mlp.fc2)  # the Triton bias gradient on CUDA
        self.drop_path2 = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, segments: Segments | None = None) -> torch.Tensor:
        x, m = self.forward_pending(x, None, segments)
        return x + m.merged()

    def forward_pending(self, x: torch.Tensor, r: Branch | None = None,
                        segments: Segments | None = None) -> tuple[torch.Tensor, Branch]:
        """The block on the residual stream x + r (r: the previous block's pending branch, None when x is the
        stream), its own last residual add left to the caller: returns (s, m), the block's output being
        s + m.merged(). Chained this way (CombaViT), every residual add runs inside the LayerNorm that follows it
        (a FusedLayerNorm's residual form: one kernel each way), where a plain add costs a float32 pass forward
        and a gradient sum backward; with COMBA_BRANCH_BIAS_IN_NORM so do the biases of the Linear layers that end
        the branches (Branch.bias). Called directly, not as a module: the caller checks that no hook watches
        the block (CombaViT._chained)."""
        with self._weight_casts(x):
            # each norm folded into the Linear layer that reads it where that layer can take it (_folds)
            f1 = self.norm1 if self._folds(self.norm1, self.mixer, self.drop_path1, x, r) else None
            if r is None:
                y = self.norm1(x) if f1 is None else self.norm1.normed(x)
            else:
                x, y = add_norm(self.norm1, x, r, fold=f1 is not None)
            b = self._branch(self.mixer, self.drop_path1, y, segments, fold=f1)
            f2 = self.norm2 if self._folds(self.norm2, self.mlp, self.drop_path2, x, b) else None
            x, y = add_norm(self.norm2, x, b, fold=f2 is not None)
            return x, self._branch(self.mlp, self.drop_path2, y, fold=f2)

    def _weight_casts(self, x: torch.Tensor):
        return block_weight_casts([self], x)

    def cast_groups(self, x: torch.Tensor) -> list:
        """The weights and biases of the block's Linear layers as ops.linear.cast_once takes them (the joint input
        projection's as its pieces; what takes another layout is a miss, cast where it is used)."""
        w, b, _ = self.mixer._joint_weight(x)
        groups = [w, b]
        for lin in (self.mixer.proj, getattr(self.mlp, "fc1", None), getattr(self.mlp, "fc2", None)):
            if isinstance(lin, nn.Linear):
                groups += [lin.weight] + ([lin.bias] if lin.bias is not None else [])
        return groups

    @staticmethod
    def _direct(module: nn.Module, drop_path: nn.Module, y: torch.Tensor) -> bool:
        """Whether _branch calls into the module's parts rather than the module (see _branch)."""
        return (BRANCH_BIAS_IN_NORM and fused_norm_applies(y)
                and (isinstance(drop_path, nn.Identity) or not drop_path.training)
                and not (watched() or watched(module) or watched(drop_path)))

    def _mlp_parts(self, mlp: nn.Module) -> bool:
        """Whether the MLP is one whose parts _branch may call: a timm Mlp with no norm inside and an unwatched
        activation."""
        return type(mlp) is Mlp and isinstance(mlp.norm, nn.Identity) and not watched(mlp.act)

    def _folds(self, norm: nn.Module, module: nn.Module, drop_path: nn.Module, x: torch.Tensor,
               r: Branch | None) -> bool:
        """Whether norm (of the stream x, plus r) folds into the Linear layer that reads it in the branch of this
        module: the norm can (FusedLayerNorm.folds), _branch calls into the module's parts, and the mixer takes its
        joint node (CombaMixer.joint_applies), or the MLP's fc1 is an unwatched plain or fused Linear layer that
        takes ops.linear."""
        if not (isinstance(norm, FusedLayerNorm) and norm.folds(x, None if r is None else r.out)
                and self._direct(module, drop_path, x)):
            return False
        if module is self.mixer:
            return self.mixer.joint_applies(x)
        return self._mlp_parts(module) and _fc1_direct(module, x)

    def _branch(self, module: nn.Module, drop_path: nn.Module, y: torch.Tensor,
                segments: Segments | None = None, fold: FusedLayerNorm | None = None) -> Branch:
        """drop_path(module(y)) as a Branch. With BRANCH_BIAS_IN_NORM the bias of the module's last Linear layer
        apart (_unbiased) where the fused norm that would add it applies (elsewhere the modules are called as
        modules, e.g. on the CPU), no drop path is active (Identity, or eval mode) and no hook would miss a module
        call (on the module, its drop path, the Mlp's activation, or global ones): for the mixer and a timm Mlp with
        no norm inside. Otherwise the modules are called as modules. fold: y is x^ of this norm, whose weight and
        bias the first Linear layer takes folded in (where _folds said so)."""
        direct = self._direct(module, drop_path, y)
        if module is self.mixer:
            if direct:
                return self.mixer.forward_branch(y, segments, fold=fold)
            y = fold.unfold(y) if fold is not None else y
            return Branch(drop_path(module(y, segments)))
        mlp = module
        if not direct or not self._mlp_parts(mlp):
            y = fold.unfold(y) if fold is not None else y
            return Branch(drop_path(mlp(y)))
        gelu_inside = (GELU_RECOMPUTE and type(mlp.act) is nn.GELU and mlp.act.approximate == "none"
                       and type(mlp.drop1) in (nn.Dropout, nn.Identity) and not watched(mlp.drop1)
                       and (not mlp.drop1.training or getattr(mlp.drop1, "p", 0.0) == 0))
        if gelu_inside and MLP_RECOMPUTE and _fc1_direct(mlp, y) and _defers_bias(mlp.fc2, mlp.drop2, y):
            return Branch(mlp_op(y, mlp.fc1.weight, mlp.fc1.bias, mlp.fc2.weight,
                                 fold=None if fold is None else (fold.weight, fold.bias)), mlp.fc2.bias)
        h = block_linear(y, mlp.fc1.weight, mlp.fc1.bias, fold=fold) if fold is not None else mlp.fc1(y)
        if gelu_inside:
            return _unbiased(mlp.fc2, mlp.drop2, h, gelu=mlp.act)
        return _unbiased(mlp.fc2, mlp.drop2, mlp.drop1(mlp.act(h)))


def block_weight_casts(blocks, x: torch.Tensor):
    """Where the blocks' Linear layers take ops.linear under autocast (CUDA, fused block kernels): ops.linear's
    cast_once for their weights and biases, one concatenation and one cast for all of them where each layer cast
    its own weight and bias, a kernel each (Comba-T: ten kernels a block). Otherwise no context."""
    dev = x.device.type
    if torch.compiler.is_compiling() or not (torch.is_autocast_enabled(dev) and fused_linear_applies(x)):
        return nullcontext()
    dt = torch.get_autocast_dtype(dev)
    groups = [g for blk in blocks for g in blk.cast_groups(x)]
    if all(p.dtype == dt for g in groups for p in (g if isinstance(g, (list, tuple)) else [g])
           if isinstance(p, torch.Tensor)):
        return nullcontext()
    return cast_once(groups, dt)


def add_norm(norm: nn.Module, x: torch.Tensor, r: Branch, fold: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(s, norm(s)) for s = x + r.merged(): one kernel each way for a fused FusedLayerNorm (its residual form, the
    branch's bias included), unless hooks watch the norm: then the add and a call of the norm as a module, so that
    they see its input and output. fold (where FusedLayerNorm.folds said so): (s, x^ of s) for a Linear layer that
    takes the norm's weight and bias folded in."""
    if isinstance(norm, FusedLayerNorm) and not watched(norm):
        return norm.residual(x, r.out, r.bias, fold=fold)
    if fold:
        raise ValueError("add_norm: fold needs an unwatched FusedLayerNorm (see FusedLayerNorm.folds)")
    s = x + r.merged()
    return s, norm(s)
