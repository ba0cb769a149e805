"""The token-major depthwise conv kernels (comba_vision.ops.dwconv) against F.conv2d in float64."""
from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F

from comba_vision.ops.dwconv import dwconv_applies, dwconv_tokens
from tests.ops.helpers import rel_err

TRITON_OK = torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1"
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _conv_ref(a, w, b, segments):
    """nn.Conv2d's depthwise conv on each grid of token-major a [B, N, C], back to token-major."""
    B, N, C = a.shape
    outs, start = [], 0
    for h, wd in segments:
        t = a[:, start:start + h * wd].transpose(1, 2).reshape(B, C, h, wd)
        outs.append(F.conv2d(t, w, b, padding=w.shape[-1] // 2, groups=C).flatten(2).transpose(1, 2))
        start += h * wd
    return torch.cat(outs, 1)


def _check(segments, k, C, dtype, bound, bias=True, extra_cols=0, B=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    N = sum(h * w for h, w in segments)
    # a column slice of a wider tensor, as the mixer's joint projection hands it over
    wide = torch.randn(B, N, C + extra_cols, generator=gen).to(DEVICE, dtype)
    a = wide[..., :C].detach().requires_grad_()
    w = (torch.randn(C, 1, k, k, generator=gen) / k).to(DEVICE).requires_grad_()
    b = torch.randn(C, generator=gen).to(DEVICE).requires_grad_() if bias else None
    y = dwconv_tokens(a, w, b, segments)
    assert y.shape == (B, N, C) and y.dtype == dtype
    refs = [x.detach().double().cpu().requires_grad_() for x in (a, w) + ((b,) if bias else ())]
    yr = _conv_ref(refs[0], refs[1], refs[2] if bias else None, segments)
    dy = torch.randn(yr.shape, generator=gen, dtype=torch.float64)
    (y.double() * dy.to(DEVICE)).sum().backward()
    (yr * dy).sum().backward()
    errs = [rel_err(y, yr), rel_err(a.grad, refs[0].grad), rel_err(w.grad, refs[1].grad)]
    if bias:
        errs.append(rel_err(b.grad, refs[2].grad))
    assert max(errs) <= bound, errs
    assert w.grad.dtype == w.dtype and a.grad.shape == a.shape


@pytest.mark.skipif(not TRITON_OK, reason="needs CUDA or TRITON_INTERPRET=1")
@pytest.mark.parametrize("segments, k, C, extra, bias, bwd3", [
    ([(5, 7)], 3, 40, 10, True, True),           # one grid, channels not a multiple of the block, strided rows
    ([(5, 7)], 3, 40, 10, True, False),          # the same through the general backward kernel
    ([(4, 4), (6, 3)], 3, 70, 0, True, False),   # the general backward on a second grid (its partial rows)
    ([(4, 4), (6, 3)], 3, 70, 0, False, True),   # template + search grids, as the tracker lays them out
    ([(1, 9)], 3, 16, 0, True, True),            # no grid: one row of tokens
    ([(5, 6)], 5, 24, 3, True, True),            # 5 x 5 window (general backward)
    ([(9, 11)], 3, 70, 2, True, True),           # more tokens than one backward program walks
])
def test_dwconv_matches_conv2d_float64(monkeypatch, segments, k, C, extra, bias, bwd3):
    import comba_vision.ops.dwconv as dw
    monkeypatch.setattr(dw, "BWD3", bwd3)
    _check(segments, k, C, torch.float32, 1e-5, bias=bias, extra_cols=extra)


@pytest.mark.skipif(not TRITON_OK, reason="needs CUDA or TRITON_INTERPRET=1")
def test_dwconv_half_precision():
    dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float16  # bf16 only on the GPU
    _check([(8, 8), (3, 5)], 3, 96, dtype, 1e-2, extra_cols=8)


@pytest.mark.skipif(not TRITON_OK, reason="needs CUDA or TRITON_INTERPRET=1")
def test_dwconv_one_token_rows_with_odd_strides():
    """[B, 1, C] with a stride(1) that is not the rows' spacing (PyTorch calls such a tensor contiguous): the
    rows are stride(0) apart, and the kernels must read them there."""
    fm = torch.randn(3, 8, 1, 1, generator=torch.Generator().manual_seed(0)).to(DEVICE)
    a = fm.flatten(2).transpose(1, 2)  # [3, 1, 8], strides (8, 1, 1)
    assert a.stride(1) != a.stride(0)
    w = torch.randn(8, 1, 3, 3, generator=torch.Generator().manual_seed(1)).to(DEVICE)
    out = dwconv_tokens(a, w, None, [(1, 1)])
    ref = _conv_ref(a.double().cpu(), w.double().cpu(), None, [(1, 1)])
    assert rel_err(out, ref) <= 1e-6


def test_dwconv_bad_inputs():
    a = torch.zeros(2, 12, 8)
    with pytest.raises(ValueError, match="segments"):
        dwconv_tokens(a, torch.zeros(8, 1, 3, 3), None, [(3, 3)])
    with pytest.raises(ValueError, match="weight"):
        dwconv_tokens(a, torch.zeros(8, 1, 2, 2), None, [(3, 4)])
    with pytest.raises(ValueError, match="bias"):
        dwconv_tokens(a, torch.zeros(8, 1, 3, 3), torch.zeros(7), [(3, 4)])
    with pytest.raises(ValueError, match="odd"):
        dwconv_tokens(a, torch.zeros(8, 1, 4, 4), None, [(3, 4)])
    with pytest.raises(ValueError, match=r"\[8, 1, k, k\]"):  # channels differ from a's
        dwconv_tokens(a, torch.zeros(6, 1, 3, 3), None, [(3, 4)])
    with pytest.raises(ValueError, match="weight"):  # not square
        dwconv_tokens(a, torch.zeros(8, 1, 3, 5), None, [(3, 4)])
    with pytest.raises(ValueError, match=r"\[B, N, C\]"):
        dwconv_tokens(a[0], torch.zeros(8, 1, 3, 3), None, [(3, 4)])


def test_dwconv_applies_only_to_depthwise_same_convs(monkeypatch):
    monkeypatch.setenv("COMBA_FUSED_CONV", "1")
    x = torch.zeros(1, device="meta")  # not CUDA: never
    conv = torch.nn.Conv2d(8, 8, 3, padding=1, groups=8)
    assert not dwconv_applies(x, conv)
    if torch.cuda.is_available():
        xc = torch.zeros(1, device="cuda")
        assert dwconv_applies(xc, conv)
        assert not dwconv_applies(xc, torch.nn.Conv2d(8, 8, 3, padding=1))            # not depthwise
        assert not dwconv_applies(xc, torch.nn.Conv2d(8, 8, 3, padding=1, groups=8, stride=2))
        monkeypatch.setenv("COMBA_FUSED_CONV", "0")
        assert not dwconv_applies(xc, conv)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_mixer_with_fused_conv_matches_cudnn(monkeypatch):
    """A Comba block on two grids (the tracker's layout) under bf16 autocast, with the Triton conv and with
    cuDNN's: output and every parameter gradient measured against the block in float32 (cuDNN). The Triton
    conv must be about as close as cuDNN's bf16 conv is (some gradients, A_log's, are sums that cancel)."""
    from comba_vision.layers.comba_mixer import CombaBlock

    torch.manual_seed(0)
    block = CombaBlock(96, 3).cuda()
    x = torch.randn(4, 8 * 8 + 4 * 4, 96, device="cuda")
    segments = [(4, 4), (8, 8)]
    res = {}
    for mode, amp in (("0", False), ("0", True), ("1", True)):
        monkeypatch.setenv("COMBA_FUSED_CONV", mode)
        block.zero_grad()
        with torch.autocast("cuda", torch.bfloat16, enabled=amp):
            y = block(x, segments)
        y.float().square().sum().backward()
        res[mode, amp] = [y.float()] + [p.grad.clone() for p in block.parameters()]
    names = ["output"] + [n for n, _ in block.named_parameters()]
    ref, cudnn, triton_ = res["0", False], res["0", True], res["1", True]
    for name, r, c, t in zip(names, ref, cudnn, triton_):
        assert rel_err(t, r) <= 1.5 * rel_err(c, r) + 5e-3, name
