"""The fused input preparation of the mixer against its PyTorch form run in float64."""
from __future__ import annotations

import os

import pytest
import torch

from comba_vision.ops.mixer_prep import mixer_prep, mixer_prep_torch
from tests.ops.helpers import rel_err

TRITON_OK = torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1"
NAMES = ("q~", "k", "v", "p", "g", "beta")


def _inputs(B, N, H, K, V, dtype, device, seed=0):
    gen = torch.Generator().manual_seed(seed)
    c = 2 * torch.randn(B, N, 2 * H * K + H * V, generator=gen)
    z = 3 * torch.randn(B, N, 2 * H, generator=gen)
    params = [0.5 * torch.randn(H, generator=gen) for _ in range(4)]  # A_log, dt_bias, b_logit, d
    return [c.to(device, dtype), z.to(device, dtype)] + [x.to(device) for x in params]


def _run(fn, xs, H, K, V, used, seed=1):
    """Outputs, and the gradients of every input for a fixed random projection of the outputs in used."""
    xs = [x.detach().clone().requires_grad_() for x in xs]
    outs = fn(*xs, H, K, V)
    gen = torch.Generator().manual_seed(seed)
    loss = sum((o.double() * torch.randn(o.shape, generator=gen, dtype=torch.float64).to(o.device)).sum()
               for i, o in enumerate(outs) if i in used)
    loss.backward()
    return outs, [x.grad for x in xs]


@pytest.mark.skipif(not TRITON_OK, reason="needs CUDA or TRITON_INTERPRET=1")
@pytest.mark.parametrize("B, N, H, K, V, used", [
    (2, 23, 2, 16, 24, range(6)),          # a partial token block, V not a power of two
    (1, 40, 3, 32, 64, (0, 2, 4)),         # Comba-T's head sizes; k, p and beta take no part in the loss
])
def test_fused_prep_matches_float64(B, N, H, K, V, used):
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    xs = _inputs(B, N, H, K, V, torch.float32, dev)
    outs, grads = _run(mixer_prep, xs, H, K, V, used)
    ref_outs, ref_grads = _run(mixer_prep_torch, [x.double() for x in xs], H, K, V, used)
    for name, o, r in zip(NAMES, outs, ref_outs):
        assert o.dtype == (torch.float32 if name in ("g", "beta") else xs[0].dtype), name
        assert o.shape == r.shape and rel_err(o, r) <= 1e-5, name
    for name, gr, r in zip(("dc", "dz", "dA_log", "ddt_bias", "db_logit", "dd"), grads, ref_grads):
        if r is None:  # the parameter reaches only unused outputs (b_logit through p when p is unused)
            assert not gr.any(), name
        else:
            assert rel_err(gr, r) <= 1e-5, name


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="bf16 dots and stores on the GPU")
def test_fused_prep_bf16_on_gpu():
    H, K, V = 3, 32, 64
    xs = _inputs(4, 196, H, K, V, torch.bfloat16, "cuda")
    outs, grads = _run(mixer_prep, xs, H, K, V, range(6))
    ref_outs, ref_grads = _run(mixer_prep_torch, [x.double() for x in xs], H, K, V, range(6))
    for name, o, r in zip(NAMES, outs, ref_outs):
        assert rel_err(o, r) <= 1e-2, name
    for name, gr, r in zip(("dc", "dz", "dA_log", "ddt_bias", "db_logit", "dd"), grads, ref_grads):
        assert rel_err(gr, r) <= 1e-2, name


def test_bad_shapes_are_named():
    xs = _inputs(1, 5, 2, 8, 8, torch.float32, "cpu")
    with pytest.raises(ValueError, match=r"c must be \[B, N, 2\*H\*K \+ H\*V\]"):
        mixer_prep(xs[0][..., :-1], *xs[1:], 2, 8, 8)
    with pytest.raises(ValueError, match=r"z must be \[B, N, 2\*H\]"):
        mixer_prep(xs[0], xs[1][..., :3], *xs[2:], 2, 8, 8)
