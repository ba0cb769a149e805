"""The MLP node that keeps only its input (comba_vision.ops.mlp) against float64 references."""
from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F

from comba_vision.ops.mlp import mlp
from tests.ops.helpers import rel_err

TRITON_OK = torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1"
DEV = "cuda" if torch.cuda.is_available() else "cpu"
pytestmark = pytest.mark.skipif(not TRITON_OK, reason="needs CUDA or TRITON_INTERPRET=1")


def _case(seed=0, C=40, hidden=96):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 13, C, generator=gen)
    nw, nb = 1 + 0.4 * torch.randn(C, generator=gen), 0.3 * torch.randn(C, generator=gen)
    w1, b1 = torch.randn(hidden, C, generator=gen) / C ** 0.5, 0.2 * torch.randn(hidden, generator=gen)
    w2, b2 = torch.randn(C, hidden, generator=gen) / hidden ** 0.5, 0.2 * torch.randn(C, generator=gen)
    return [t.to(DEV) for t in (x, nw, nb, w1, b1, w2, b2)]


def _reference(x, nw, nb, w1, b1, w2, b2, fold):
    return F.linear(F.gelu(F.linear(x * nw + nb if fold else x, w1, b1)), w2, b2)


@pytest.mark.parametrize("fold", [False, True])
@pytest.mark.parametrize("case", ["all", "no_b2", "no_b1_frozen_w1"])
def test_mlp_matches_float64(fold, case):
    """The output and the gradients of the input and of every parameter (fc1's bias absent and its weight frozen, no
    fc2 bias; with fold the norm's weight and bias too) against float64, in float32."""
    leaves = _case()

    def run(dt):
        x, nw, nb, w1, b1, w2, b2 = ts = [t.detach().to(dt).requires_grad_() for t in leaves]
        if case == "no_b2":
            b2 = None
        if case == "no_b1_frozen_w1":
            b1 = None
            w1.requires_grad_(False)
        if dt == torch.float64:
            y = _reference(x, nw, nb, w1, b1, w2, b2, fold)
        else:
            y = mlp(x, w1, b1, w2, b2, fold=(nw, nb) if fold else None)
        gen = torch.Generator().manual_seed(1)
        (y.double() * torch.randn(y.shape, generator=gen, dtype=torch.float64).to(y.device)).sum().backward()
        return y, [t.grad for t in ts]

    y, grads = run(torch.float32)
    ref, ref_grads = run(torch.float64)
    assert rel_err(y, ref) <= 1e-5
    for i, (g, r) in enumerate(zip(grads, ref_grads, strict=True)):
        if r is None:
            assert g is None, i
        else:
            assert g.dtype == torch.float32 and rel_err(g, r) <= 1e-5, i


def test_mlp_keeps_only_its_input():
    """Nothing of the hidden width is kept for the backward: the input and the parameters' compute copies only."""
    x, nw, nb, w1, b1, w2, b2 = _case()
    x.requires_grad_()
    w1.requires_grad_()
    kept = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: kept.append(t) or t, lambda t: t):
        mlp(x, w1, b1, w2, None, fold=(nw, nb))
    activations = [t for t in kept if t.dim() > 2 or t.shape[0] == x.shape[0]]
    assert len(activations) == 1 and activations[0].shape == x.shape


@pytest.mark.parametrize("fold", [False, True])
def test_mlp_double_backward(fold):
    """Under create_graph the second derivatives are those of the PyTorch MLP (float64)."""
    x, nw, nb, w1, b1, w2, b2 = (t.double() for t in _case(C=16, hidden=24))

    def second(fn):
        xs = [t.detach().clone().requires_grad_() for t in (x, nw, nb, w1, b1, w2, b2)]
        y = fn(*xs)
        g = torch.autograd.grad((y * y).sum(), xs, create_graph=True, allow_unused=True)
        return torch.autograd.grad(sum((gi * gi).sum() for gi in g if gi is not None), xs, allow_unused=True)

    got = second(lambda x, nw, nb, w1, b1, w2, b2: mlp(x, w1, b1, w2, b2, fold=(nw, nb) if fold else None))
    ref = second(lambda *t: _reference(*t, fold))
    for i, (g, r) in enumerate(zip(got, ref, strict=True)):
        if r is None:
            assert g is None or not g.any(), i
        else:
            assert rel_err(g, r) <= (1e-5 if fold else 1e-6), i
