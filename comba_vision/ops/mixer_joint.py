"""The Comba mixer between its two projections as one autograd node, taking the joint input projection's output.

CombaMixer projects x once into y = [a | y_g | z | padding] (conv input, output-gate logits, gate logits; one GEMM,
``CombaMixer._in_proj``) and then runs the depthwise conv on a, the prep and both scans on (conv(a), z)
(``mixer_fused.mixer_scan``) and the output norm and gate on y_g (``mixer_fused.mixer_out``). As three autograd
nodes fed by slices of y, their input gradients da, dz, dy_g come back as three tensors, and autograd's split
backward concatenates them into y's gradient before the projection's backward can read it: a copy of the whole
[B, N, width] gradient, 0.62 ms of a Comba-S training step on the H200 (session 13 profile, 2% of the step).

``mixer_joint`` is the same computation as one node whose backward writes da, dz and dy_g straight into the
column ranges of one [B, N, width] gradient (the conv, prep and output kernels take the row stride of their
output; a conv other than 3 x 3, or COMBA_CONV_BWD3=0, writes da through a copy), and zeroes the padding
columns. The kernels are those of the three nodes: conv forward, prep, the
chunk pipeline of both directions, output forward; output backward, chunk backward, prep backward, conv backward.
CUDA (or the CPU under TRITON_INTERPRET=1). ``COMBA_MIXER_JOINT=0`` gives the three nodes back.
"""
from __future__ import annotations

import os

import torch
from torch import Tensor

from . import triton_chunk
from .dwconv import _conv_grads, _dw_bwd_launch, _dw_launch, _launches, conv_args, dwconv_applies
from .function import chunk_buffers, chunk_bwd
from .linear import _mm_as, compute_copy
from .mixer_fused import (
    _check,
    _check_offsets,
    _check_rows,
    _out_bwd_launch,
    _out_launch,
    _param_grads,
    _prep_bwd,
    _prep_bwd_launch,
    _prep_fwd,
    _prep_launch,
    _prep_outputs,
    _row_stride,
    _rows,
    mixer_scan_applies,
)
from .mixer_fused import _meta as _prep_meta
from .triton_chunk import BOTH, comba_fwd_triton, empty_work_buffers

MIXER_JOINT = os.environ.get("COMBA_MIXER_JOINT", "1") == "1"
# The conv inside the prep kernels (COMBA_CONV_IN_PREP, a memory option): "1": c = conv(a) is formed where the prep
# reads it, forward and backward, and never stored (Comba-T: 768 B a token and block less kept for the backward).
# "2": the backward also runs the prep forward again for q~, k, v, p, g, beta instead of keeping them (another 984
# B). "0" (default): the conv's own kernel writes c, which the node keeps with the prep's outputs. H200, graphed
# Comba-T at 1024px, batch 8 (session 22): "0" 435.0 images/s, peak 3.87 GB; "1" 422.4, 3.59 GB; "2" 407.0, 3.26 GB
# (DeiT-T 3.09). The prep kernels with the conv inside are slower than the conv and prep kernels apart: their
# programs take one head's 32- and 64-column slices, where the conv's take 128 columns.
_CONV_IN_PREP_MODES = ("0", "1", "2")
CONV_IN_PREP = os.environ.get("COMBA_CONV_IN_PREP", "0")
if CONV_IN_PREP not in _CONV_IN_PREP_MODES:
    raise ValueError(f"COMBA_CONV_IN_PREP must be one of {_CONV_IN_PREP_MODES}, got {CONV_IN_PREP!r}")


def _conv_prep_launch(a: Tensor, conv_w: Tensor, conv_b: Tensor, segments: list[int], z: Tensor, A_log: Tensor,
                      dt_bias: Tensor, b_logit: Tensor, d: Tensor, H: int, K: int, V: int):
    """_prep_launch(_dw_launch(a, conv_w, conv_b, segments), z, ...) with the conv inside the prep kernel (one
    launch a patch grid): the same values, c not written."""
    a, sa = _rows(a)
    (z, sz) = _rows(z)
    B, N, _ = a.shape
    q, k, v, p, g, beta = _prep_outputs(a, H, K, V)
    _, meta = _prep_meta(H, K, V, B * N)
    for (n, _), _, start, h, w in _launches(B, 1, segments, meta["BN"], 1)[0]:
        _prep_fwd[(n, H)](a, z, sz, A_log, dt_bias, b_logit, d, q, k, v, p, g, beta, B * N, H, K, V,
                          A=a, SA=sa, CW=conv_w, CB=conv_b, NSEG=B * h * w, NPER=N, START=start, GH=h, GW=w,
                          KS=conv_w.shape[-1], CONV=True, ALIGNED=sa % 8 == 0, **meta)
    return q, k, v, p, g, beta


def _conv_prep_bwd_launch(a: Tensor, conv_w: Tensor, conv_b: Tensor, segments: list[int], z: Tensor,
                          A_log: Tensor, dt_bias: Tensor, b_logit: Tensor, d: Tensor, douts, H: int, K: int,
                          V: int, dz: Tensor) -> tuple[Tensor, Tensor]:
    """_prep_bwd_launch's (dc, the [4, H] parameter sums) with c formed in the kernel from a (_conv_prep_launch);
    z's gradient written into dz."""
    a, sa = _rows(a)
    (z, sz) = _rows(z)
    dq, dk, dv, dp, dg, dbeta = (x.contiguous() for x in douts)
    B, N, _ = a.shape
    _, meta = _prep_meta(H, K, V, B * N)
    launches, programs = _launches(B, 1, segments, meta["BN"], 1)
    dc = a.new_empty(B, N, 2 * H * K + H * V)
    dpar = torch.empty(programs, 4, H, device=a.device, dtype=torch.float32)
    for (n, _), p0, start, h, w in launches:
        _prep_bwd[(n, H)](a, z, sz, A_log, dt_bias, b_logit, d, dq, dk, dv, dp, dg, dbeta, dc, dz, _row_stride(dz),
                          dpar[p0:], B * N, H, K, V, TWO=dq.dim() == 5, A=a, SA=sa, CW=conv_w, CB=conv_b,
                          NSEG=B * h * w, NPER=N, START=start, GH=h, GW=w, KS=conv_w.shape[-1], CONV=True,
                          ALIGNED=sa % 8 == 0, **meta)
    return dc, dpar.sum(0)


def _pieces(y: Tensor, H: int, K: int, V: int) -> tuple[Tensor, Tensor, Tensor]:
    """The column slices a [.., 2HK + HV], z [.., 2H], y_g [.., HV] of the joint projection's output
    y = [a | y_g | z | padding] (y_g before z: 16-byte aligned where the row width and 2HK + HV are multiples
    of 8, so that the output kernels move it as vectors)."""
    wa = 2 * H * K + H * V
    return y[..., :wa], y[..., wa + H * V:wa + H * V + 2 * H], y[..., wa:wa + H * V]


@torch.library.custom_op("comba_vision::mixer_joint", mutates_args=())
def _joint_op(y: Tensor, conv_w: Tensor, conv_b: Tensor, A_log: Tensor, dt_bias: Tensor, b_logit: Tensor,
              d: Tensor, norm_w: Tensor, H: int, K: int, V: int, segments: list[int], scale: float, iplr: bool,
              eps: float, proj_w: Tensor | None = None, proj_wc: Tensor | None = None
              ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor,
                         Tensor, Tensor]:
    """(the gated output [B, N, H * V], then what the backward keeps: the conv output c, q~, k, v, p, g, beta,
    the operator's work buffers M, W, U, h and the sum of both scans' outputs, [B, N, H, V]). With CONV_IN_PREP c is
    an empty placeholder, not kept (and with "2" neither are q~ .. beta). proj_w (the output projection's weight
    [C, H * V], with proj_wc its copy in y's dtype): the first result is the projection of the gated output
    without a bias, [B, N, C], and the gated output is not kept (the backward writes it again)."""
    a, z, y_g = _pieces(y, H, K, V)
    if CONV_IN_PREP != "0":  # c formed inside the prep kernel and not kept (an empty placeholder)
        c = y.new_empty(0)
        qkvpgb = _conv_prep_launch(a, conv_w, conv_b, segments, z, A_log, dt_bias, b_logit, d, H, K, V)
    else:
        c = _dw_launch(a, conv_w, conv_b, segments)
        qkvpgb = _prep_launch(c, z, A_log, dt_bias, b_logit, d, H, K, V)
    o2, _, bufs = comba_fwd_triton(*qkvpgb, scale, None, False, iplr, BOTH)
    out, o = _out_launch(o2, y_g, norm_w, eps, keep_sum=True)
    if proj_wc is not None:
        with torch.autocast(y.device.type, enabled=False):  # in y's dtype, as the fake says, under autocast too
            out = out @ proj_wc.t()
    return (out, c, *qkvpgb, *bufs, o)


@_joint_op.register_fake
def _(y, conv_w, conv_b, A_log, dt_bias, b_logit, d, norm_w, H, K, V, segments, scale, iplr, eps, proj_w=None,
      proj_wc=None):
    B, N, _ = y.shape
    c = y.new_empty(B, N, 2 * H * K + H * V)
    bufs = empty_work_buffers(B, N, H, K, V, 2, y.dtype, y.device)
    out = y.new_empty(B, N, H * V if proj_wc is None else proj_wc.shape[0])
    return (out, y.new_empty(0) if CONV_IN_PREP != "0" else c, *_prep_outputs(c, H, K, V), *bufs,
            y.new_empty(B, N, H, V))


@torch.library.custom_op("comba_vision::mixer_joint_bwd", mutates_args=())
def _joint_bwd_op(dout: Tensor, y: Tensor, conv_w: Tensor, conv_b: Tensor, A_log: Tensor, dt_bias: Tensor,
                  b_logit: Tensor, d: Tensor, norm_w: Tensor, c: Tensor, o: Tensor, kept: list[Tensor], H: int,
                  K: int, V: int, segments: list[int], scale: float, iplr: bool, eps: float,
                  proj_wc: Tensor | None = None, proj_grad: bool = True
                  ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """(y's gradient, the conv's [k*k + 1, C] weight-by-tap and bias gradients, the four per-head parameter
    gradients [4, H], the output norm's weight gradient [V], the output projection's weight gradient (with proj_wc,
    else an empty tensor); float32 but the first). An empty c: the forward had the conv inside the prep
    (CONV_IN_PREP); where kept then holds the work buffers only (CONV_IN_PREP "2"; none with RECOMPUTE_BUFFERS),
    q~, k, v, p, g, beta are formed again here. proj_wc: dout is the projection's output gradient [B, N, C]; its
    weight's gradient is formed with proj_grad only (else an empty tensor)."""
    dy = torch.empty(y.shape, dtype=y.dtype, device=y.device)  # dense rows, whatever y's strides
    a, z, y_g = _pieces(y, H, K, V)
    da, dz, dyg = _pieces(dy, H, K, V)
    dproj = y.new_empty(0, dtype=torch.float32)
    gated = None
    if proj_wc is not None:  # the projection's input gradient, and (proj_grad) its input again from _out_bwd below
        with torch.autocast(y.device.type, enabled=False):
            dzp, dout = dout, dout @ proj_wc
        gated = torch.empty(dout.shape, dtype=y.dtype, device=y.device) if proj_grad else None
    # the scans' sum has one gradient: written once and read by both directions' kernels (COMBA_SHARED_DO), or twice
    do2, _, dnw = _out_bwd_launch(o, y_g, norm_w, dout, eps, dyg=dyg, do_two=not triton_chunk.SHARED_DO, y=gated)
    if gated is not None:
        del dout
        dproj = _mm_as(dzp.reshape(-1, dzp.shape[-1]).t(), gated.view(-1, gated.shape[-1]), torch.float32)
        del gated
    conv_in_prep = c.numel() == 0
    if conv_in_prep and len(kept) in (0, 4):
        kept = [*_conv_prep_launch(a, conv_w, conv_b, segments, z, A_log, dt_bias, b_logit, d, H, K, V), *kept]
    if len(kept) == 6:  # RECOMPUTE_BUFFERS: the work buffers rebuilt from q~, k, v, p, g, beta
        kept = [*kept, *chunk_buffers(*kept, None, iplr, BOTH)]
    grads = chunk_bwd(*kept, do2, None, scale, False, iplr, BOTH, False)[:6]
    if conv_in_prep:
        dc, dpar = _conv_prep_bwd_launch(a, conv_w, conv_b, segments, z, A_log, dt_bias, b_logit, d, grads, H, K, V,
                                         dz=dz)
    else:
        dc, _, dpar = _prep_bwd_launch(c, z, A_log, dt_bias, b_logit, d, grads, H, K, V, dz=dz)
    _, dwb = _dw_bwd_launch(a, conv_w, dc, segments, da=da)
    pad = y.shape[-1] - (2 * H * K + 2 * H + 2 * H * V)
    if pad:
        dy[..., y.shape[-1] - pad:].zero_()
    return dy, dwb, dpar, dnw, dproj


@_joint_bwd_op.register_fake
def _(dout, y, conv_w, conv_b, A_log, dt_bias, b_logit, d, norm_w, c, o, kept, H, K, V, segments, scale, iplr, eps,
      proj_wc=None, proj_grad=True):
    f32 = dict(dtype=torch.float32)
    return (y.new_empty(y.shape), y.new_empty(conv_w.shape[-1] ** 2 + 1, conv_w.shape[0], **f32),
            y.new_empty(4, H, **f32), y.new_empty(V, **f32),
            y.new_empty(proj_wc.shape if proj_wc is not None and proj_grad else 0, **f32))


def _setup(ctx, inputs, output):
    y, conv_w, conv_b, A_log, dt_bias, b_logit, d, norm_w, H, K, V, segments, scale, iplr, eps, *proj = inputs
    proj_w, proj_wc = (proj + [None, None])[:2]
    ctx.proj = proj_wc is not None
    ctx.proj_dtype = None if proj_w is None else proj_w.dtype
    _, c, *kept, o = output
    ctx.mark_non_differentiable(c, *kept, o)
    ctx.set_materialize_grads(False)
    # RECOMPUTE_BUFFERS: the backward rebuilds M, W, U, h from q~, k, v, p, g, beta (as the operator's own does);
    # an empty c and CONV_IN_PREP "2": it forms q~ .. beta again from y
    keep = kept[:6] if triton_chunk.RECOMPUTE_BUFFERS else kept
    if c.numel() == 0 and CONV_IN_PREP == "2":
        keep = keep[6:]
    ctx.save_for_backward(y, conv_w, conv_b, A_log, dt_bias, b_logit, d, norm_w, c, o, proj_wc, *keep)
    ctx.args = (H, K, V, segments, scale, iplr, eps)
    ctx.bias_dtype = conv_b.dtype


def _backward(ctx, dout, *_):
    if dout is None:
        return (None,) * 17
    y, conv_w, conv_b, A_log, dt_bias, b_logit, d, norm_w, c, o, proj_wc, *kept = ctx.saved_tensors
    need_proj = ctx.proj and ctx.needs_input_grad[15]
    dy, dwb, dpar, dnw, dproj = _joint_bwd_op(dout.contiguous(), y, conv_w, conv_b, A_log, dt_bias, b_logit, d, norm_w,
                                              c, o, kept, *ctx.args, proj_wc=proj_wc, proj_grad=need_proj)
    dconv_w, dconv_b = _conv_grads(dwb, conv_w)
    return (dy, dconv_w, dconv_b.to(ctx.bias_dtype), *_param_grads(dpar, (A_log, dt_bias, b_logit, d)),
            dnw.to(norm_w.dtype), None, None, None, None, None, None, None,
            dproj.to(ctx.proj_dtype) if need_proj else None, None)


_joint_op.register_autograd(_backward, setup_context=_setup)


def mixer_joint_applies(y: Tensor, conv: torch.nn.Conv2d) -> bool:
    """Whether mixer_joint runs: mixer_scan and the fused conv apply, the conv has a bias (COMBA_MIXER_JOINT)."""
    return MIXER_JOINT and conv.bias is not None and mixer_scan_applies(y) and dwconv_applies(y, conv)


def mixer_joint(y: Tensor, conv_w: Tensor, conv_b: Tensor, A_log: Tensor, dt_bias: Tensor, b_logit: Tensor,
                d: Tensor, norm_w: Tensor, H: int, K: int, V: int, segments=None, variant: str = "splr",
                scale: float | None = None, eps: float | None = None, proj_w: Tensor | None = None) -> Tensor:
    """mixer_out(mixer_scan(dwconv_tokens(a, conv_w, conv_b, segments), z, A_log, dt_bias, b_logit, d, H, K, V,
    variant, scale), y_g, norm_w, eps) for the joint projection's output y = [a | y_g | z | padding]
    [B, N, >= 2HK + 2H + 2HV], as one autograd node whose backward writes y's gradient in one piece (padding
    columns zero). Returns [B, N, H * V] in y's dtype.

    proj_w [C, H * V] (the output projection's weight, no bias): returns F.linear(that, proj_w) [B, N, C] instead,
    in y's dtype (proj_w cast once per ops.linear.cast_once context), and keeps no copy of the gated output for the
    projection's weight gradient: the output kernel's backward writes it again (Comba-T: 384 B a token and block)."""
    from .comba import check_sizes_and_variant
    check_sizes_and_variant(K, V, variant)
    if conv_b is None:
        raise ValueError("mixer_joint needs the conv's bias (conv_b); a conv without one takes dwconv_tokens")
    if y.dim() != 3 or y.shape[-1] < 2 * H * K + 2 * H + 2 * H * V:
        raise ValueError(f"y must be [B, N, >= 2*H*K + 2*H + 2*H*V] = [B, N, >= {2 * H * K + 2 * H + 2 * H * V}], "
                         f"got shape {tuple(y.shape)}")
    y = y.contiguous()
    a, z, y_g = _pieces(y, H, K, V)
    segs = conv_args(a, conv_w, conv_b, segments)
    _check(a, z, (A_log, dt_bias, b_logit, d), H, K, V)
    _check_offsets(2 * y.shape[0] * y.shape[1] * H * max(K, V), "both scans' outputs and gradients")
    _check_rows(y, "y")
    if tuple(norm_w.shape) != (V,) or not norm_w.is_contiguous():
        raise ValueError(f"norm_w must be a contiguous [V] = [{V}] tensor, got shape {tuple(norm_w.shape)}")
    scale = float(K ** -0.5 if scale is None else scale)
    # eps None: what F.rms_norm takes then, the machine epsilon of the activations' dtype (as mixer_out)
    eps = float(torch.finfo(y.dtype).eps if eps is None else eps)
    proj = ()
    if proj_w is not None:
        if proj_w.dim() != 2 or proj_w.shape[1] != H * V:
            raise ValueError(f"proj_w must be [C, H*V] = [C, {H * V}], got shape {tuple(proj_w.shape)}")
        proj = (proj_w, compute_copy(proj_w, y.dtype))
    return _joint_op(y, conv_w.contiguous(), conv_b, A_log, dt_bias, b_logit, d, norm_w, H, K, V, segs, scale,
                     variant == "iplr", eps, *proj)[0]
