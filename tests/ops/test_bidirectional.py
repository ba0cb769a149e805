"""comba_bidirectional: both scans merged, against the float64 step recurrence run in each direction."""
from __future__ import annotations

import os

import pytest
import torch

from comba_vision.ops import comba_bidirectional, comba_recurrent_reference
from tests.ops.helpers import make_inputs, rel_err

BACKENDS = ["torch", "triton"] if torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1" else ["torch"]


def _reference(xs, variant):
    x64 = [x.detach().cpu().double() for x in xs]
    o_f, _ = comba_recurrent_reference(*x64, variant=variant)
    o_r, _ = comba_recurrent_reference(*x64, variant=variant, reverse=True)
    return o_f, o_r


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("variant", ["splr", "iplr"])
def test_merges_match_reference(backend, variant):
    xs, _ = make_inputs(2, 70, 2, 16, 24, seed=3)
    if backend == "triton" and torch.cuda.is_available():
        xs = [x.detach().cuda().requires_grad_() for x in xs]
    ref_f, ref_r = _reference(xs, variant)
    o_f, o_r = comba_bidirectional(*xs, variant=variant, merge="none", backend=backend)
    assert rel_err(o_f, ref_f) <= 1e-4 and rel_err(o_r, ref_r) <= 1e-4
    assert rel_err(comba_bidirectional(*xs, variant=variant, backend=backend), ref_f + ref_r) <= 1e-4
    assert rel_err(comba_bidirectional(*xs, variant=variant, merge="mean", backend=backend),
                   (ref_f + ref_r) / 2) <= 1e-4


def test_gradients_match_reference():
    xs, _ = make_inputs(1, 40, 2, 16, 16, seed=5)
    xs = [x.requires_grad_() for x in xs]
    do = torch.randn(1, 40, 2, 16, dtype=torch.float64)
    comba_bidirectional(*xs, backend="torch").backward(do.float())
    x64 = [x.detach().double().requires_grad_() for x in xs]
    (comba_recurrent_reference(*x64)[0] + comba_recurrent_reference(*x64, reverse=True)[0]).backward(do)
    for name, a, b in zip(("dq", "dk", "dv", "dp", "dg", "dbeta"), xs, x64):
        assert rel_err(a.grad, b.grad) <= 1e-4, name


def test_bad_merge():
    xs, _ = make_inputs(1, 4, 1, 8, 8)
    with pytest.raises(ValueError, match="merge"):
        comba_bidirectional(*xs, merge="gated")


TRITON_OK = torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1"


@pytest.mark.skipif(not TRITON_OK, reason="needs CUDA or TRITON_INTERPRET=1")
@pytest.mark.parametrize("T, K, V, variant, merge, doubling", [
    (1, 16, 16, "splr", "sum", False), (17, 32, 16, "iplr", "mean", True), (65, 16, 32, "splr", "sum", False),
    (197, 64, 64, "iplr", "sum", True)])
def test_fused_forward_matches_reference(monkeypatch, T, K, V, variant, merge, doubling):
    """The one-launch bidirectional forward (COMBA_FUSED_FWD=1) against both float64 scans, with either
    inverse of the diagonal blocks."""
    import comba_vision.ops.triton_chunk as tc
    monkeypatch.setattr(tc, "FUSED_FWD", True)
    monkeypatch.setattr(tc, "DOUBLING_INVERSE", doubling)
    calls = []
    real = tc.comba_bidir_fwd_fused
    monkeypatch.setattr(tc, "comba_bidir_fwd_fused", lambda *a: calls.append(1) or real(*a))
    import comba_vision.ops.function as fn
    monkeypatch.setattr(fn, "comba_bidir_fwd_fused", tc.comba_bidir_fwd_fused)
    xs, _ = make_inputs(2, T, 2, K, V, seed=T)
    if torch.cuda.is_available():
        xs = [x.cuda() for x in xs]
    with torch.no_grad():
        o = comba_bidirectional(*xs, variant=variant, merge=merge, backend="triton")
    assert calls, "the fused kernel was not used"
    ref_f, ref_r = _reference(xs, variant)
    ref = ref_f + ref_r
    assert rel_err(o, ref / 2 if merge == "mean" else ref) <= 1e-4


@pytest.mark.skipif(not TRITON_OK, reason="needs CUDA or TRITON_INTERPRET=1")
def test_fused_forward_not_used_when_gradients_are_needed(monkeypatch):
    import comba_vision.ops.triton_chunk as tc
    monkeypatch.setattr(tc, "FUSED_FWD", True)
    monkeypatch.setattr(tc, "comba_bidir_fwd_fused", lambda *a: pytest.fail("fused forward used under autograd"))
    xs, _ = make_inputs(1, 8, 1, 16, 16)
    xs = [(x.cuda() if torch.cuda.is_available() else x).requires_grad_() for x in xs]
    comba_bidirectional(*xs, backend="triton").sum().backward()
    assert xs[0].grad is not None
