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
