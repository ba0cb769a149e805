"""The fused LayerNorm kernels (comba_vision.ops.layer_norm) against F.layer_norm in float64."""
from __future__ import annotations

import os

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from comba_vision.layers import FusedLayerNorm
from comba_vision.ops.layer_norm import add_layer_norm, layer_norm
from tests.ops.helpers import rel_err

TRITON_OK = torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1"


def _inputs(shape, dtype, device, seed=0):
    gen = torch.Generator().manual_seed(seed)
    D = shape[-1]
    x = 3 * torch.randn(shape, generator=gen) + 1.5  # an offset: the mean matters
    w, b = 1 + 0.5 * torch.randn(D, generator=gen), 0.5 * torch.randn(D, generator=gen)
    return x.to(device, dtype), w.to(device), b.to(device)


def _run(fn, xs, seed=1):
    xs = [x.detach().clone().requires_grad_() for x in xs]
    y = fn(*xs)
    gen = torch.Generator().manual_seed(seed)
    (y.double() * torch.randn(y.shape, generator=gen, dtype=torch.float64).to(y.device)).sum().backward()
    return y, [x.grad for x in xs]


def _ref(x, w, b, eps=1e-6):
    return F.layer_norm(x, (x.shape[-1],), w, b, eps)


@pytest.mark.skipif(not TRITON_OK, reason="needs CUDA or TRITON_INTERPRET=1")
@pytest.mark.parametrize("shape", [(2, 37, 192), (3, 50, 100), (1, 300, 384), (5, 64)])
def test_fused_layer_norm_matches_float64(shape):
    """Forward and the gradients of x, weight and bias; rows that end inside a row block and inside a
    backward program's run of blocks (300 rows of 384: 2 x 8 = 16 rows a program), widths that are not powers
    of two."""
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    xs = _inputs(shape, torch.float32, dev)
    y, grads = _run(lambda x, w, b: layer_norm(x, w, b, 1e-6), xs)
    y_ref, ref = _run(_ref, [x.double() for x in xs])
    assert y.dtype == torch.float32 and y.shape == y_ref.shape
    assert rel_err(y, y_ref) <= 1e-5
    for name, g, r in zip(("dx", "dweight", "dbias"), grads, ref):
        assert rel_err(g, r) <= 1e-5, name


@pytest.mark.skipif(not TRITON_OK, reason="needs CUDA or TRITON_INTERPRET=1")
def test_output_dtype_follows_autocast():
    """Under autocast the result is in the autocast dtype, rounded once from float32 (what autocast's own
    float32 LayerNorm followed by the next Linear's cast gives)."""
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    x, w, b = _inputs((4, 20, 96), torch.float32, dev)
    with torch.autocast(dev, dtype=torch.bfloat16):
        y = layer_norm(x, w, b, 1e-6)
    assert y.dtype == torch.bfloat16
    ref = _ref(x.double(), w.double(), b.double())
    assert rel_err(y, ref) <= 4e-3  # bf16 rounding, once
    assert (y.double() - ref.to(torch.bfloat16).double()).abs().max().item() <= 2 ** -7 * ref.abs().max().item()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="bf16 on the GPU")
def test_fused_layer_norm_bf16_on_gpu():
    """A Comba-T block's shape: float32 residual stream in, bf16 out under autocast, bf16 output gradient."""
    xs = _inputs((16, 197, 192), torch.float32, "cuda")

    def fused(x, w, b):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            return layer_norm(x, w, b, 1e-6)
    y, grads = _run(fused, xs)
    y_ref, ref = _run(_ref, [x.double() for x in xs])
    assert y.dtype == torch.bfloat16 and grads[0].dtype == torch.float32
    assert rel_err(y, y_ref) <= 1e-2
    for name, g, r in zip(("dx", "dweight", "dbias"), grads, ref):
        assert rel_err(g, r) <= 1e-2, name


def _add_ref(x, r, w, b):
    s = x + r
    return s, _ref(s, w, b)


def _run_add(fn, xs, seed=1, dy_dtype=None):
    """Both outputs (s, y) of fn, each weighted by its own random cotangent, and the inputs' gradients.
    dy_dtype: y's cotangent rounded to that dtype first (what autograd hands a half-precision y)."""
    xs = [x.detach().clone().requires_grad_() for x in xs]
    s, y = fn(*xs)
    gen = torch.Generator().manual_seed(seed)
    ds, dy = (torch.randn(t.shape, generator=gen, dtype=torch.float64).to(t.device) for t in (s, y))
    if dy_dtype is not None:
        dy = dy.to(dy_dtype).double()
    ((s.double() * ds).sum() + (y.double() * dy).sum()).backward()
    return (s, y), [x.grad for x in xs]


@pytest.mark.skipif(not TRITON_OK, reason="needs CUDA or TRITON_INTERPRET=1")
@pytest.mark.parametrize("shape", [(2, 37, 192), (3, 50, 100)])
def test_add_layer_norm_matches_float64(shape):
    """The residual add and the norm in one kernel: both outputs, and the gradients of x, r, weight and bias
    with a cotangent on each output (the block's residual stream goes on past the norm)."""
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    x, w, b = _inputs(shape, torch.float32, dev)
    r = _inputs(shape, torch.float32, dev, seed=5)[0]
    (s, y), grads = _run_add(lambda x, r, w, b: add_layer_norm(x, r, w, b, 1e-6), [x, r, w, b])
    (s_ref, y_ref), ref = _run_add(_add_ref, [t.double() for t in (x, r, w, b)])
    assert s.dtype == y.dtype == torch.float32
    assert rel_err(s, s_ref) <= 1e-6 and rel_err(y, y_ref) <= 1e-5
    for name, g, gr in zip(("dx", "dr", "dweight", "dbias"), grads, ref):
        assert rel_err(g, gr) <= 1e-5, name


@pytest.mark.skipif(not TRITON_OK, reason="needs CUDA or TRITON_INTERPRET=1")
@pytest.mark.parametrize("shape, half", [((2, 37, 192), False), ((3, 50, 100), False), ((4, 20, 96), True)])
@pytest.mark.parametrize("tile", ["", "8,2,8", "4,1,16"])
def test_add_layer_norm_branch_bias(shape, half, tile, monkeypatch):
    """rb, the branch's bias added in the norm's kernel (s = x + (r + rb)): both outputs and the five gradients
    against float64, rb's the column sums of the sum's gradient, from the backward's partials; a float32 stream
    with a half-precision branch and a float32 bias as under autocast (half); the backward on its default tiles
    and on others (COMBA_LN_BWD_TILE)."""
    monkeypatch.setenv("COMBA_LN_BWD_TILE", tile)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    hdt = torch.bfloat16 if dev == "cuda" else torch.float16
    x, w, b = _inputs(shape, torch.float32, dev)
    r = _inputs(shape, hdt if half else torch.float32, dev, seed=5)[0]
    rb = _inputs(shape[-1:], torch.float32, dev, seed=6)[0]
    kw = dict(out_dtype=hdt) if half else {}
    (s, y), grads = _run_add(lambda x, r, w, b, rb: add_layer_norm(x, r, w, b, 1e-6, rb=rb, **kw), [x, r, w, b, rb],
                             dy_dtype=hdt if half else None)
    (s_ref, y_ref), ref = _run_add(lambda x, r, w, b, rb: _add_ref(x, r + rb, w, b),
                                   [t.double() for t in (x, r, w, b, rb)], dy_dtype=hdt if half else None)
    assert s.dtype == torch.float32 and grads[4].dtype == torch.float32
    assert rel_err(s, s_ref) <= 1e-6 and rel_err(y, y_ref) <= (4e-3 if half else 1e-5)
    for name, g, gr in zip(("dx", "dr", "dweight", "dbias", "drb"), grads, ref):
        assert rel_err(g, gr) <= ((4e-3 if name == "dr" else 1e-3) if half else 1e-5), name
    with pytest.raises(ValueError, match="branch bias"):
        add_layer_norm(x, r, w, b, rb=rb[:-1])


@pytest.mark.skipif(not TRITON_OK, reason="needs CUDA or TRITON_INTERPRET=1")
def test_add_layer_norm_mixed_dtypes():
    """A float32 residual stream plus a half-precision branch (a Linear's output under autocast): the sum
    is float32 as x + r is, the branch's gradient comes back in its own dtype."""
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    half = torch.bfloat16 if dev == "cuda" else torch.float16
    x, w, b = _inputs((4, 20, 96), torch.float32, dev)
    r = _inputs((4, 20, 96), half, dev, seed=5)[0]
    (s, y), grads = _run_add(lambda x, r, w, b: add_layer_norm(x, r, w, b, 1e-6, out_dtype=half), [x, r, w, b])
    # the norm's output gradient arrives rounded to the half dtype (autograd casts it to y's dtype): the
    # reference gets the same rounded cotangent
    (s_ref, y_ref), ref = _run_add(_add_ref, [t.double() for t in (x, r, w, b)], dy_dtype=half)
    assert s.dtype == torch.float32 and y.dtype == half
    assert grads[0].dtype == torch.float32 and grads[1].dtype == half
    assert rel_err(s, s_ref) <= 1e-6 and rel_err(y, y_ref) <= 4e-3
    for name, g, gr in zip(("dx", "dr", "dweight", "dbias"), grads, ref):
        assert rel_err(g, gr) <= (4e-3 if name == "dr" else 1e-3), name


@pytest.mark.skipif(not TRITON_OK, reason="needs CUDA or TRITON_INTERPRET=1")
@pytest.mark.parametrize("used", ["s", "y"])
def test_add_layer_norm_one_output_used(used):
    """Only the sum or only the norm takes part in the loss (the other output's gradient is None)."""
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    x, w, b = _inputs((2, 30, 64), torch.float32, dev)
    r = _inputs((2, 30, 64), torch.float32, dev, seed=5)[0]
    grads = []
    for fn in (lambda *t: add_layer_norm(*t, 1e-6), _add_ref):
        xs = [t.detach().clone().double().requires_grad_() if fn is _add_ref else t.detach().clone().requires_grad_()
              for t in (x, r, w, b)]
        s, y = fn(*xs)
        out = s if used == "s" else y
        weights = torch.linspace(-1, 1, out.numel(), dtype=torch.float64, device=dev).view(out.shape)
        (out.double() * weights).sum().backward()
        grads.append([t.grad for t in xs])
    for name, g, gr in zip(("dx", "dr", "dweight", "dbias"), *grads):
        if gr is None or not gr.any():
            assert g is None or not g.any(), name
        else:
            assert rel_err(g, gr) <= 1e-5, name


@pytest.mark.skipif(not TRITON_OK, reason="needs CUDA or TRITON_INTERPRET=1")
def test_add_layer_norm_output_dtype_follows_the_sum():
    """Without autocast the norm's output has the sum's dtype (x + r promoted), as the unfused form gives."""
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    x, w, b = _inputs((2, 5, 32), torch.float16, dev)
    r = _inputs((2, 5, 32), torch.float32, dev, seed=5)[0]
    s, y = add_layer_norm(x, r, w, b, 1e-6)
    assert s.dtype == y.dtype == torch.float32


@pytest.mark.skipif(not TRITON_OK, reason="needs CUDA or TRITON_INTERPRET=1")
def test_fused_block_residual_matches_unfused(monkeypatch):
    """A Comba block whose norms take the fused kernels (the residual add with norm2 included) against the same
    block on PyTorch's: output and every gradient, float32."""
    import comba_vision.layers.fused as fused
    from comba_vision.layers.comba_mixer import CombaBlock

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    block = CombaBlock(32, 2, mlp_ratio=2.0, norm_layer=FusedLayerNorm).to(dev)
    with torch.no_grad():
        for norm in (block.norm1, block.norm2):
            norm.weight.add_(0.2 * torch.randn_like(norm.weight))
            norm.bias.add_(0.2 * torch.randn_like(norm.bias))
    x = torch.randn(2, 12, 32, device=dev)
    runs = []
    for on in (False, True):
        monkeypatch.setattr(fused, "fused_norm_applies", lambda t, on=on: on)
        block.zero_grad()
        xi = x.clone().requires_grad_()
        y = block(xi, [(3, 4)])
        (y * torch.linspace(-1, 1, y.numel(), device=dev).view(y.shape)).sum().backward()
        runs.append([y.detach(), xi.grad] + [p.grad.clone() for p in block.parameters()])
    names = ["output", "dx"] + [n for n, _ in block.named_parameters()]
    for name, a, b in zip(names, *runs):
        assert rel_err(a, b) <= 1e-5, name
    x, r = torch.randn(2, 9, 32), torch.randn(2, 9, 32)
    with pytest.raises(ValueError, match="differ in shape"):
        add_layer_norm(x, r[:, :3], block.norm2.weight, block.norm2.bias)


def test_fused_layer_norm_is_a_layer_norm():
    """Same parameters and state dict as nn.LayerNorm; on the CPU it is nn.LayerNorm."""
    ln, fused = nn.LayerNorm(48, eps=1e-6), FusedLayerNorm(48, eps=1e-6)
    with torch.no_grad():
        ln.weight.normal_()
        ln.bias.normal_()
    fused.load_state_dict(ln.state_dict())
    x = torch.randn(3, 7, 48)
    assert list(fused.state_dict()) == ["weight", "bias"]
    assert torch.equal(fused(x), ln(x))


def test_bad_inputs_are_named():
    x = torch.randn(2, 5, 8)
    with pytest.raises(ValueError, match=r"contiguous weight of shape \(8,\)"):
        layer_norm(x, torch.ones(7), torch.zeros(8))
    with pytest.raises(ValueError, match="bias"):
        layer_norm(x, torch.ones(8), None)
    with pytest.raises(ValueError, match="floating-point"):
        layer_norm(x.long(), torch.ones(8), torch.zeros(8))


@pytest.mark.parametrize("bad", ["8,2", "8,3,4", "a,b,c", "0,2,4", "8,64,4"])
def test_ln_bwd_tile_override_is_checked(bad, monkeypatch):
    from comba_vision.ops.layer_norm import _bwd_meta
    monkeypatch.setenv("COMBA_LN_BWD_TILE", "8,4,8")
    assert _bwd_meta(192) == dict(BN=8, BD=256, num_warps=4, ITERS=8)
    monkeypatch.setenv("COMBA_LN_BWD_TILE", bad)
    with pytest.raises(ValueError, match="COMBA_LN_BWD_TILE must be"):
        _bwd_meta(192)


@pytest.mark.skipif(not TRITON_OK, reason="needs CUDA or TRITON_INTERPRET=1")
@pytest.mark.parametrize("residual", [False, True])
def test_half_output_keeps_xhat_not_the_float32_input(residual, monkeypatch):
    """A float32 input (or residual sum) normalised into a half-precision output: the node keeps x^ in float16
    and rstd (half the bytes of the input), and the gradients from them are as close to float64 as those
    recomputed from the input (COMBA_LN_KEEP_XHAT=0; within 2x or 1e-3), on inputs whose mean is large against
    their spread."""
    import comba_vision.ops.layer_norm as ln
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    half = torch.bfloat16 if dev == "cuda" else torch.float16
    shape = (3, 41, 96)
    x, w, b = _inputs(shape, torch.float32, dev)
    x = x + 40.0
    r = _inputs(shape, half, dev, seed=5)[0]
    args, names = ([x, r, w, b], ("dx", "dr", "dweight", "dbias")) if residual else ([x, w, b],
                                                                                    ("dx", "dweight", "dbias"))

    def fn(*t):
        return add_layer_norm(*t, 1e-6, out_dtype=half) if residual else layer_norm(*t, 1e-6, out_dtype=half)

    def ref(*t):
        return _add_ref(*t) if residual else _ref(*t)

    runner = (lambda f, xs: _run_add(f, xs, dy_dtype=half)) if residual else _run
    _, ref_grads = runner(ref, [t.double() for t in args])
    errs = {}
    for keep in (True, False):
        monkeypatch.setattr(ln, "KEEP_XHAT", keep)
        kept = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t, k=kept: k.append(t) or t, lambda t: t):
            fn(*[t.detach().clone().requires_grad_() for t in args])
        full = [t for t in kept if tuple(t.shape) in (shape, (shape[0] * shape[1], shape[2]))]
        assert [t.dtype for t in full] == [torch.float16 if keep else torch.float32]
        assert any(tuple(t.shape) == (shape[0] * shape[1],) for t in kept) == keep  # rstd
        _, grads = runner(fn, args)
        errs[keep] = [rel_err(g, gr) for g, gr in zip(grads, ref_grads)]
    for name, e1, e0 in zip(names, errs[True], errs[False]):
        assert e1 <= max(2 * e0, 1e-3), name


@pytest.mark.skipif(not TRITON_OK, reason="needs CUDA or TRITON_INTERPRET=1")
@pytest.mark.parametrize("keep,fold", [(False, False), (True, False), (False, True)])
def test_norm_ops_schema_and_fake_shapes(keep, fold):
    """torch.library.opcheck's schema and fake-tensor checks of both norm ops, with and without x^ kept, folded."""
    from comba_vision.ops.layer_norm import _add_ln_op, _ln_op
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    half = torch.bfloat16 if dev == "cuda" else torch.float16
    x, w, b = _inputs((2, 9, 32), torch.float32, dev)
    r = _inputs((2, 9, 32), half, dev, seed=5)[0]
    utils = ("test_schema", "test_faketensor")
    assert set(torch.library.opcheck(_ln_op, (x, w, b, 1e-6, half, keep, fold), test_utils=utils).values()) \
        == {"SUCCESS"}
    assert set(torch.library.opcheck(_add_ln_op, (x, r, w, b, 1e-6, half, w, keep, fold),
                                     test_utils=utils).values()) == {"SUCCESS"}


@pytest.mark.skipif(not TRITON_OK, reason="needs CUDA or TRITON_INTERPRET=1")
def test_xhat_only_kept_for_a_backward():
    """Without a backward to come (no_grad, or no input that needs a gradient) the norm writes no x^."""
    import comba_vision.ops.layer_norm as ln
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    half = torch.bfloat16 if dev == "cuda" else torch.float16
    x, w, b = _inputs((2, 9, 32), torch.float32, dev)
    assert not ln._keeps_xh(torch.float32, half, x, w, b)
    assert ln._keeps_xh(torch.float32, half, x, w.requires_grad_(), b)
    with torch.no_grad():
        assert not ln._keeps_xh(torch.float32, half, x, w, b)
    assert not ln._keeps_xh(torch.float64, torch.float32, x, w, b)


@pytest.mark.skipif(not TRITON_OK, reason="needs CUDA or TRITON_INTERPRET=1")
@pytest.mark.parametrize("residual", [False, True])
def test_fold_gives_xhat_and_its_gradient(residual):
    """fold: the norm's output is x^ (no weight or bias applied), its backward takes x^'s gradient as it is and gives
    the input (and the branch bias rb) its gradient against float64, and weight and bias none (the Linear layer
    they are folded into gives them theirs: tests/ops/test_linear.py); the norm keeps its output and rstd only."""
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    shape = (3, 37, 48)
    x, w, b = _inputs(shape, torch.float32, dev)
    r = _inputs(shape, torch.float32, dev, seed=3)[0]
    rb = 0.3 * torch.randn(shape[-1], generator=torch.Generator().manual_seed(4)).to(dev)
    w.requires_grad_()
    b.requires_grad_()
    kept = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: kept.append(t) or t, lambda t: t):
        if residual:
            y, (dx, dr, drb) = _run(lambda x, r, rb: add_layer_norm(x, r, w, b, 1e-6, rb=rb, fold=True)[1],
                                    (x, r, rb))
        else:
            y, (dx,) = _run(lambda x: layer_norm(x, w, b, 1e-6, fold=True), (x,))
    ref_in = (x.double(), r.double(), rb.double()) if residual else (x.double(),)
    ref, ref_grads = _run(lambda *t: F.layer_norm(t[0] + t[1] + t[2] if residual else t[0], (shape[-1],), eps=1e-6),
                          ref_in)
    assert rel_err(y, ref) <= 1e-6
    for g, gr in zip((dx, dr, drb) if residual else (dx,), ref_grads, strict=True):
        assert rel_err(g, gr) <= 1e-5
    assert w.grad is None and b.grad is None
    kept = [t for t in kept if t.numel() > shape[-1] and t.dtype != torch.float64]  # not _run's float64 projection
    assert [tuple(t.shape) for t in kept] == [shape, (shape[0] * shape[1],)]
    assert kept[0] is y or kept[0].untyped_storage().data_ptr() == y.untyped_storage().data_ptr()
