"""The mixer's fused kernels (input preparation, output norm and gate) against their PyTorch forms in float64."""
from __future__ import annotations

import os

import pytest
import torch

from comba_vision.ops.mixer_fused import mixer_out, mixer_out_torch, mixer_prep, mixer_prep_torch
from tests.ops.helpers import rel_err

TRITON_OK = torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1"
NAMES = ("q~", "k", "v", "p", "g", "beta")


def _inputs(B, N, H, K, V, dtype, device, seed=0, strided=False):
    """c, z and the four per-head parameters; strided: z is a column slice of a wider tensor, as in the
    mixer (one projection makes qkv, the gate and the output-gate logits)."""
    gen = torch.Generator().manual_seed(seed)
    c = 2 * torch.randn(B, N, 2 * H * K + H * V, generator=gen)
    off = 2 if strided else 0
    # sliced on the device: moving a column slice to another device makes it contiguous
    z = (3 * torch.randn(B, N, 2 * H + (5 if strided else 0), generator=gen)).to(device, dtype)[..., off:off + 2 * H]
    params = [0.5 * torch.randn(H, generator=gen) for _ in range(4)]  # A_log, dt_bias, b_logit, d
    return [c.to(device, dtype), z] + [x.to(device) for x in params]


def _run(fn, xs, H, K, V, used, seed=1):
    """Outputs, and the gradients of every input for a fixed random projection of the outputs in used."""
    xs = [x.detach().requires_grad_() for x in xs]  # detach keeps a slice's strides (clone would not)
    outs = fn(*xs, H, K, V)
    gen = torch.Generator().manual_seed(seed)
    loss = sum((o.double() * torch.randn(o.shape, generator=gen, dtype=torch.float64).to(o.device)).sum()
               for i, o in enumerate(outs) if i in used)
    loss.backward()
    return outs, [x.grad for x in xs]


@pytest.mark.skipif(not TRITON_OK, reason="needs CUDA or TRITON_INTERPRET=1")
@pytest.mark.parametrize("B, N, H, K, V, used, strided", [
    (2, 23, 2, 16, 24, range(6), True),    # a partial token block, V not a power of two, z a slice
    (1, 40, 3, 32, 64, (0, 2, 4), False),  # Comba-T's head sizes; k, p and beta take no part in the loss
])
def test_fused_prep_matches_float64(B, N, H, K, V, used, strided):
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    xs = _inputs(B, N, H, K, V, torch.float32, dev, strided=strided)
    assert xs[1].is_contiguous() != strided
    outs, grads = _run(mixer_prep, xs, H, K, V, used)
    ref_outs, ref_grads = _run(mixer_prep_torch, [x.detach().double() for x in xs], H, K, V, used)
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
    xs = _inputs(4, 196, H, K, V, torch.bfloat16, "cuda", strided=True)
    outs, grads = _run(mixer_prep, xs, H, K, V, range(6))
    ref_outs, ref_grads = _run(mixer_prep_torch, [x.detach().double() for x in xs], H, K, V, range(6))
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
    with pytest.raises(ValueError, match=r"dt_bias must be a contiguous \[H\] = \[2\] tensor"):
        mixer_prep(*xs[:3], xs[3][:1], *xs[4:], 2, 8, 8)


def test_offsets_beyond_32_bits_are_refused():
    """The kernels index with 32-bit offsets: a tensor past 2**31 elements gets an error, not wrong memory
    (checked on a broadcast view, which has the shape without the memory)."""
    big = torch.zeros(1, 1, 1).expand(2**16, 2**14, 2 * 2 * 8 + 2 * 8)
    xs = _inputs(1, 5, 2, 8, 8, torch.float32, "cpu")
    with pytest.raises(ValueError, match=r"c has \d+ elements, more than the fused mixer kernels' 32-bit"):
        mixer_prep(big, torch.zeros(1, 1, 1).expand(2**16, 2**14, 4), *xs[2:], 2, 8, 8)


def _out_inputs(B, N, H, V, dtype, device, seed=0):
    """Both scans' outputs o2, the output-gate logits (a column slice of a wider tensor) and the norm weight."""
    gen = torch.Generator().manual_seed(seed)
    o2 = torch.randn(2, B, N, H, V, generator=gen)
    y_g = (2 * torch.randn(B, N, H * V + 7, generator=gen)).to(device, dtype)[..., 3:3 + H * V]  # sliced there
    assert not y_g.is_contiguous()
    w = 1 + 0.3 * torch.randn(V, generator=gen)
    return o2.to(device, dtype), y_g, w.to(device)


def _run_out(fn, xs, eps=1e-5, seed=1):
    xs = [x.detach().requires_grad_() for x in xs]
    y = fn(*xs, eps)
    gen = torch.Generator().manual_seed(seed)
    (y.double() * torch.randn(y.shape, generator=gen, dtype=torch.float64).to(y.device)).sum().backward()
    return y, [x.grad for x in xs]


@pytest.mark.skipif(not TRITON_OK, reason="needs CUDA or TRITON_INTERPRET=1")
@pytest.mark.parametrize("B, N, H, V", [(2, 23, 2, 24), (1, 40, 3, 64)])
def test_fused_out_matches_float64(B, N, H, V):
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    xs = _out_inputs(B, N, H, V, torch.float32, dev)
    y, grads = _run_out(mixer_out, xs)
    ref, ref_grads = _run_out(mixer_out_torch, [x.detach().double() for x in xs])
    assert y.dtype == torch.float32 and y.shape == (B, N, H * V) and rel_err(y, ref) <= 1e-5
    for name, gr, r in zip(("do2", "dy_g", "dweight"), grads, ref_grads):
        assert gr.shape == r.shape and rel_err(gr, r) <= 1e-5, name
    # the sum's gradient reaches both scans alike
    assert torch.equal(grads[0][0], grads[0][1])


@pytest.mark.skipif(not TRITON_OK, reason="needs CUDA or TRITON_INTERPRET=1")
def test_fused_out_takes_the_sum_of_both_scans():
    """The recompute mode hands the output kernel o_fwd + o_rev [B, N, H, V] instead of both scans: the same
    result as from the pair, and the sum's gradient is the pair's (either scan's) gradient."""
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    o2, y_g, w = _out_inputs(2, 23, 2, 24, torch.float32, dev)
    y2, g2 = _run_out(mixer_out, [o2, y_g, w])
    y1, g1 = _run_out(mixer_out, [o2[0] + o2[1], y_g, w])
    ref, ref_grads = _run_out(mixer_out_torch, [(o2[0] + o2[1]).double(), y_g.double(), w.double()])
    assert g1[0].shape == o2.shape[1:]
    assert rel_err(y1, ref) <= 1e-5 and rel_err(y1, y2) <= 1e-6
    for name, gr, r in zip(("do", "dy_g", "dweight"), g1, ref_grads):
        assert rel_err(gr, r) <= 1e-5, name
    assert torch.equal(g1[0], g2[0][0])


@pytest.mark.skipif(not TRITON_OK, reason="needs CUDA or TRITON_INTERPRET=1")
def test_fused_out_keeps_the_sum_not_both_scans():
    """For both scans' outputs the node keeps their sum (half the memory), equal to o2[0] + o2[1] rounded to their
    dtype, and not o2 itself."""
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    o2, y_g, w = (x.requires_grad_() for x in _out_inputs(2, 11, 2, 16, torch.float16, dev))
    kept = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: kept.append(t) or t, lambda t: t):
        mixer_out(o2, y_g, w, 1e-5)
    shapes = [tuple(t.shape) for t in kept]
    assert tuple(o2.shape) not in shapes and shapes.count(tuple(o2.shape[1:])) == 1
    o = next(t for t in kept if tuple(t.shape) == tuple(o2.shape[1:]))
    assert o.dtype == torch.float16 and torch.equal(o, o2[0].detach() + o2[1].detach())


@pytest.mark.skipif(not TRITON_OK, reason="needs CUDA or TRITON_INTERPRET=1")
def test_fused_out_op_schema_fake_and_no_sum_without_backward(monkeypatch):
    """opcheck of the output op (schema, fake shapes) with and without the sum kept; mixer_out asks for the sum only
    where a backward is to come, and the output is the same either way."""
    import comba_vision.ops.mixer_fused as mf
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    o2, y_g, w = _out_inputs(1, 9, 2, 16, torch.float32, dev)
    for keep_sum in (True, False):
        args = (o2, y_g.contiguous(), w, 1e-5, keep_sum)
        assert set(torch.library.opcheck(mf._out_op, args, test_utils=("test_schema", "test_faketensor")).values()) \
            == {"SUCCESS"}
        assert (mf._out_op(*args)[1].numel() > 0) == keep_sum
    seen, real = [], mf._out_launch
    monkeypatch.setattr(mf, "_out_launch",
                        lambda *a, keep_sum=False: seen.append(keep_sum) or real(*a, keep_sum=keep_sum))
    with torch.no_grad():
        y0 = mixer_out(o2, y_g, w, 1e-5)
    y1 = mixer_out(o2.clone().requires_grad_(), y_g, w, 1e-5)
    assert seen == [False, True] and torch.equal(y0, y1.detach())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="bf16 stores on the GPU")
def test_fused_out_bf16_on_gpu():
    xs = _out_inputs(4, 196, 3, 64, torch.bfloat16, "cuda")
    y, grads = _run_out(mixer_out, xs)
    ref, ref_grads = _run_out(mixer_out_torch, [x.detach().double() for x in xs])
    assert y.dtype == torch.bfloat16 and rel_err(y, ref) <= 1e-2
    for name, gr, r in zip(("do2", "dy_g", "dweight"), grads, ref_grads):
        assert rel_err(gr, r) <= 1e-2, name


@pytest.mark.skipif(not TRITON_OK, reason="needs CUDA or TRITON_INTERPRET=1")
def test_fused_out_takes_eps_none_like_rms_norm():
    """An RMSNorm built with eps=None: F.rms_norm then uses the dtype's machine epsilon; so does the kernel."""
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    o2, y_g, w = _out_inputs(1, 9, 2, 16, torch.float32, dev)
    o2 = o2 * 1e-4  # small enough that the epsilon matters
    eps32 = torch.finfo(torch.float32).eps
    ref = mixer_out_torch(o2.double(), y_g.double(), w.double(), eps32)
    assert rel_err(mixer_out(o2, y_g, w, None), ref) <= 1e-5
    assert rel_err(mixer_out(o2, y_g, w, 1e-5), ref) > 1e-2  # the epsilon does matter at this scale


def test_bad_output_shapes_are_named():
    o2, y_g, w = _out_inputs(1, 5, 2, 8, torch.float32, "cpu")
    with pytest.raises(ValueError, match=r"o2 must be both scans' outputs \[2, B, N, H, V\]"):
        mixer_out(o2[:1], y_g, w, 1e-5)
    with pytest.raises(ValueError, match=r"y_g must be \[B, N, H\*V\]"):
        mixer_out(o2, y_g[..., :-1], w, 1e-5)
    with pytest.raises(ValueError, match=r"weight must be a contiguous \[V\]"):
        mixer_out(o2, y_g, w[:-1], 1e-5)


@pytest.mark.skipif(not TRITON_OK, reason="needs CUDA or TRITON_INTERPRET=1")
@pytest.mark.parametrize("B, N, H, K, V, variant, group", [
    (2, 70, 2, 16, 24, "splr", 0), (1, 23, 3, 32, 64, "iplr", 0), (1, 140, 2, 32, 64, "splr", 2)])
def test_mixer_scan_matches_float64(monkeypatch, B, N, H, K, V, variant, group):
    """The prep and both scans as one node (its backward sums the directions' gradients in the prep
    kernel) against the PyTorch prep and the float64 step recurrence of each direction: both scans'
    outputs, and the gradients of c, z and the four per-head parameters (group: the state kernels' grouped
    walk forced, with a short last chunk)."""
    import comba_vision.ops.triton_chunk as tc
    from comba_vision.ops import comba_bidirectional
    from comba_vision.ops.mixer_fused import mixer_scan
    monkeypatch.setattr(tc, "STATE_GROUP", group)

    def ref(c, z, *params_hkv):
        return comba_bidirectional(*mixer_prep_torch(c, z, *params_hkv), variant=variant, merge="stack",
                                   backend="reference")

    def ours(c, z, *params_hkv):
        return mixer_scan(c, z, *params_hkv, variant=variant)

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    xs = _inputs(B, N, H, K, V, torch.float32, dev, strided=True)
    (o2,), grads = _run(lambda *a: (ours(*a),), xs, H, K, V, (0,))
    (r2,), ref_grads = _run(lambda *a: (ref(*a),), [x.detach().double() for x in xs], H, K, V, (0,))
    assert o2.shape == (2, B, N, H, V) and rel_err(o2, r2) <= 1e-4
    for name, gr, r in zip(("dc", "dz", "dA_log", "ddt_bias", "db_logit", "dd"), grads, ref_grads):
        assert rel_err(gr, r) <= 1e-4, name


@pytest.mark.skipif(not TRITON_OK, reason="needs CUDA or TRITON_INTERPRET=1")
@pytest.mark.parametrize("half", [False, True])
def test_mixer_scan_op_schema_and_fake_shapes(monkeypatch, half):
    """torch.library.opcheck's schema and fake-tensor checks of the one-node op (what torch.compile needs); half:
    fp16 inputs with COMBA_HALF_BUFFERS=1, whose work buffers the fake must give in fp16 too."""
    import comba_vision.ops.triton_chunk as tc
    from comba_vision.ops.mixer_fused import _scan_op
    monkeypatch.setattr(tc, "HALF_BUFFERS", "1" if half else "0")
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    args = (*_inputs(1, 9, 2, 16, 16, torch.float16 if half else torch.float32, dev), 2, 16, 16, 0.25, False)
    assert set(torch.library.opcheck(_scan_op, args, test_utils=("test_schema", "test_faketensor")).values()) \
        == {"SUCCESS"}
    if half:
        assert {t.dtype for t in _scan_op(*args)[7:]} == {torch.float16}  # M, W, U, h
