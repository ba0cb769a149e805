"""The Linear layer with the Triton bias gradient (comba_vision.ops.linear) against float64 references."""
from __future__ import annotations

import os

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from comba_vision.layers import FusedLinear, fuse_linears
from comba_vision.ops.linear import bias_grad, linear
from tests.ops.helpers import rel_err

TRITON_OK = torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1"
DEV = "cuda" if torch.cuda.is_available() else "cpu"


@pytest.mark.skipif(not TRITON_OK, reason="needs CUDA or TRITON_INTERPRET=1")
@pytest.mark.parametrize("programs", [1024, 2])
@pytest.mark.parametrize("shape", [(3, 77, 200), (1000, 5), (2, 33, 128), (1, 1, 7), (0, 9)])
def test_bias_grad_is_the_column_sum(shape, programs, monkeypatch):
    """Rows that end inside a tile and inside a program's run, columns that end inside a column block, no rows;
    with few programs each walks many tiles (Comba-T's shapes do: 25088 rows, 64 a program)."""
    monkeypatch.setattr("comba_vision.ops.linear._PROGRAMS", programs)
    dy = torch.randn(shape, generator=torch.Generator().manual_seed(0)) + 0.5
    out = bias_grad(dy.to(DEV))
    ref = dy.double().reshape(-1, shape[-1]).sum(0)
    assert out.dtype == torch.float32 and out.shape == (shape[-1],)
    assert rel_err(out, ref) <= 1e-6


@pytest.mark.skipif(not TRITON_OK, reason="needs CUDA or TRITON_INTERPRET=1")
@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_float64(bias):
    gen = torch.Generator().manual_seed(1)
    x, w = torch.randn(4, 45, 24, generator=gen), torch.randn(40, 24, generator=gen) / 5
    b = torch.randn(40, generator=gen) if bias else None
    xs = [t.to(DEV).clone().requires_grad_() for t in (x, w, b) if t is not None]
    refs = [t.double().requires_grad_() for t in (x, w, b) if t is not None]
    y, y_ref = linear(*xs), F.linear(*refs)
    dy = torch.randn(y_ref.shape, generator=gen, dtype=torch.float64)
    y.backward(dy.to(DEV, torch.float32))
    y_ref.backward(dy)
    assert rel_err(y, y_ref) <= 1e-5
    for name, a, r in zip(("dx", "dw", "db"), xs, refs):
        assert rel_err(a.grad, r.grad) <= 1e-5, name


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="bf16 on the GPU")
def test_linear_under_autocast_on_gpu():
    """Comba-T's MLP input shape under bf16 autocast: bf16 out, float32 parameter gradients, errors of bf16
    rounding against float64, and the bias gradient as PyTorch's own (bf16 sum) gives it."""
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(16, 197, 192, generator=gen)
    lin = nn.Linear(192, 768)
    fused = FusedLinear(192, 768).cuda()
    fused.load_state_dict(lin.state_dict())
    ref = lin.double()
    xg = x.cuda().requires_grad_()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        y = fused(xg)
    dy = torch.randn(y.shape, generator=gen)
    y.backward(dy.cuda().to(y.dtype))
    xr = x.double().requires_grad_()
    y_ref = ref(xr)
    y_ref.backward(dy.double())
    assert y.dtype == torch.bfloat16 and fused.weight.grad.dtype == torch.float32
    assert rel_err(y, y_ref) <= 1e-2
    for name, a, r in (("dx", xg.grad, xr.grad), ("dw", fused.weight.grad, ref.weight.grad),
                       ("db", fused.bias.grad, ref.bias.grad)):
        assert rel_err(a, r) <= 1e-2, name


def test_fuse_linears_keeps_the_module():
    mlp = nn.Sequential(nn.Linear(6, 12), nn.GELU(), nn.Linear(12, 6))
    sd = {k: v.clone() for k, v in mlp.state_dict().items()}
    x = torch.randn(2, 6)
    y = mlp(x)
    fuse_linears(mlp[0], mlp[2])
    assert isinstance(mlp[0], FusedLinear) and isinstance(mlp[2], nn.Linear)
    assert all(torch.equal(v, sd[k]) for k, v in mlp.state_dict().items())
    assert torch.equal(mlp(x), y)  # on the CPU it is nn.Linear
    with pytest.raises(TypeError, match="plain nn.Linear"):
        fuse_linears(mlp[1])


def test_block_kernel_policy(monkeypatch):
    """ops.block_kernels: by default the fused LayerNorm / Linear run on CUDA inside fused_block_kernels()
    only; "1" always on CUDA, "0" never; never for CPU tensors; a bad value is named."""
    from types import SimpleNamespace

    from comba_vision.ops import fused_block_kernels
    from comba_vision.ops.block_kernels import applies
    cuda_x, cpu_x = SimpleNamespace(is_cuda=True), torch.zeros(1)
    monkeypatch.delenv("COMBA_FUSED_NORM", raising=False)
    assert not applies("COMBA_FUSED_NORM", cuda_x)
    with fused_block_kernels():
        with fused_block_kernels():
            assert applies("COMBA_FUSED_NORM", cuda_x) and not applies("COMBA_FUSED_NORM", cpu_x)
        assert applies("COMBA_FUSED_NORM", cuda_x)
    assert not applies("COMBA_FUSED_NORM", cuda_x)
    monkeypatch.setenv("COMBA_FUSED_NORM", "1")
    assert applies("COMBA_FUSED_NORM", cuda_x) and not applies("COMBA_FUSED_NORM", cpu_x)
    monkeypatch.setenv("COMBA_FUSED_NORM", "0")
    with fused_block_kernels():
        assert not applies("COMBA_FUSED_NORM", cuda_x)
    monkeypatch.setenv("COMBA_FUSED_NORM", "yes")
    with pytest.raises(ValueError, match="COMBA_FUSED_NORM must be one of"):
        applies("COMBA_FUSED_NORM", cuda_x)


@pytest.mark.skipif(not TRITON_OK, reason="needs CUDA or TRITON_INTERPRET=1")
def test_linear_pieces_match_float64():
    """Weight and bias as pieces stacked by rows (ints: zero rows, as the joint input projection's padding and a
    missing bias): the output of the stacked layer, and each tensor piece's own gradient against float64; a frozen
    piece gets none."""
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(3, 21, 16, generator=gen)
    w1, w2, b1 = torch.randn(5, 16, generator=gen), torch.randn(7, 16, generator=gen), torch.randn(5, generator=gen)
    frozen = torch.randn(2, 16, generator=gen)
    xs = [t.to(DEV).clone().requires_grad_() for t in (x, w1, w2, b1)]
    fz = frozen.to(DEV)
    y = linear(xs[0], [xs[1], fz, xs[2], 3], [xs[3], 9, 3])
    refs = [t.double().requires_grad_() for t in (x, w1, w2, b1)]
    w_ref = torch.cat([refs[1], frozen.double(), refs[2], torch.zeros(3, 16, dtype=torch.float64)])
    y_ref = F.linear(refs[0], w_ref, torch.cat([refs[3], torch.zeros(12, dtype=torch.float64)]))
    assert y.shape == (3, 21, 17)
    dy = torch.randn(y_ref.shape, generator=gen, dtype=torch.float64)
    y.backward(dy.to(DEV, torch.float32))
    y_ref.backward(dy)
    assert rel_err(y, y_ref) <= 1e-5
    for name, a, r in zip(("dx", "dw1", "dw2", "db1"), xs, refs):
        assert a.grad.shape == r.grad.shape and rel_err(a.grad, r.grad) <= 1e-5, name
    assert fz.grad is None


@pytest.mark.skipif(not TRITON_OK, reason="needs CUDA or TRITON_INTERPRET=1")
def test_cast_once_serves_the_casts(monkeypatch):
    """Inside cast_once, linear under autocast takes its weight and bias copies from the context (no cast of its
    own), the same values it would cast itself: equal outputs and gradients, float32 parameter gradients; the
    context's copies are gone after it, and an inner context adds to the outer one."""
    import comba_vision.ops.linear as L
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(2, 9, 16, generator=gen).to(DEV)
    w = [torch.randn(6, 16, generator=gen).to(DEV).requires_grad_(), 2]
    b = [torch.randn(6, generator=gen).to(DEV).requires_grad_(), 2]
    w2 = torch.randn(4, 16, generator=gen).to(DEV).requires_grad_()
    dev, dt = torch.device(DEV).type, torch.float16
    made = []
    stack = L._stack
    monkeypatch.setattr(L, "_stack", lambda p, d: made.append(p) or stack(p, d))

    def run():
        with torch.autocast(dev, dtype=dt):
            y = linear(x, w, b)
        y.float().square().sum().backward()
        out = (y.detach(), w[0].grad, b[0].grad)
        w[0].grad = b[0].grad = None
        return out

    plain = run()
    with L.cast_once([w, b, w2], dt):
        with L.cast_once([w2], dt):  # inner: a group of its own, the outer ones still served
            table = L._CASTS.table
            assert len(table) == 3 and all(stack(g, dt) is table[L._key(g, dt)][2] for g, *_ in table.values())
        assert len(L._CASTS.table) == 3
        before = len(made)
        cached = run()
        assert all(L._key(p, dt) in L._CASTS.table for p in made[before:])
    assert not hasattr(L._CASTS, "table")
    assert cached[1].dtype == cached[2].dtype == torch.float32
    for a, r in zip(cached, plain, strict=True):
        assert torch.equal(a, r)


def test_cast_once_group_shapes():
    """Groups of any order and width: a bias group before a padded weight group gets its own zero rows' width, and
    every copy holds its pieces' values then zeros; a group with no tensor piece is named as the error."""
    import comba_vision.ops.linear as L
    gen = torch.Generator().manual_seed(5)
    b, w = torch.randn(3, generator=gen), torch.randn(4, 6, generator=gen)
    with pytest.raises(ValueError, match="needs a tensor among them"):
        with L.cast_once([[b, 2], [5]], torch.float16):
            pass
    with L.cast_once([[b, 2], [w, 3]], torch.float16):
        table = L._CASTS.table
        assert len(table) == 2
        cb, cw = table[L._key((b, 2), torch.float16)][2], table[L._key((w, 3), torch.float16)][2]
    assert cb.shape == (5,) and cw.shape == (7, 6) and cb.dtype == cw.dtype == torch.float16
    assert torch.equal(cb, torch.cat([b, torch.zeros(2)]).half())
    assert torch.equal(cw, torch.cat([w, torch.zeros(3, 6)]).half())


def test_cast_once_sees_in_place_changes():
    """A piece changed in place inside the context (a hook may mask a weight) is cast again where it is used, not
    taken from the context's copy made before."""
    import comba_vision.ops.linear as L
    w = torch.randn(4, 6)
    with L.cast_once([w, [w, 2]], torch.float16):
        w.mul_(0)
        assert not L._stack((w,), torch.float16).any() and not L._stack((w, 2), torch.float16).any()


def test_linear_double_backward():
    """create_graph through linear (pieces, zero rows, a bias): gradgradcheck in float64 against autograd's own
    differences, the weight's part of the input gradient included."""
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(2, 5, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    w1 = torch.randn(3, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    b1 = torch.randn(3, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda x, w, b: linear(x, [w, 2], [b, 2]), (x, w1, b1))


@pytest.mark.skipif(not TRITON_OK, reason="needs CUDA or TRITON_INTERPRET=1")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_linear_gelu_matches_float64_and_keeps_the_pre_activation(dtype):
    """act="gelu": F.linear(gelu(h), w, b) against float64 (output, dh, dw, db; rows that end inside the kernel's
    block), keeping h for the backward and no [rows, hidden] tensor besides."""
    gen = torch.Generator().manual_seed(7)
    h, w, b = 2 * torch.randn(3, 1401, 24, generator=gen), torch.randn(40, 24, generator=gen) / 5, torch.randn(40)
    xs = [t.to(DEV, dt).clone().requires_grad_() for t, dt in ((h, dtype), (w, w.dtype), (b, b.dtype))]
    refs = [t.double().requires_grad_() for t in (h, w, b)]
    kept = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: kept.append(t) or t, lambda t: t):
        y = linear(xs[0], xs[1].to(dtype), xs[2].to(dtype), act="gelu")
    y_ref = F.linear(F.gelu(refs[0]), refs[1], refs[2])
    assert sum(t.shape == h.shape for t in kept) == 1 and any(t is xs[0] for t in kept)
    dy = torch.randn(y_ref.shape, generator=gen, dtype=torch.float64)
    y.backward(dy.to(DEV, dtype))
    y_ref.backward(dy)
    tol = 1e-5 if dtype == torch.float32 else 3e-3
    assert rel_err(y, y_ref) <= tol
    for name, a, r in zip(("dh", "dw", "db"), xs, refs):
        assert rel_err(a.grad, r.grad) <= tol, name


def test_linear_gelu_double_backward_and_bad_act():
    gen = torch.Generator().manual_seed(8)
    h = torch.randn(2, 5, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda h, w: linear(h, w, act="gelu"), (h, w))
    with pytest.raises(ValueError, match="act must be one of"):
        linear(h, w, act="relu")


@pytest.mark.skipif(not TRITON_OK, reason="needs CUDA or TRITON_INTERPRET=1")
def test_gelu_bwd_op_schema_and_fake_shapes():
    """opcheck of the GELU recompute kernel's op, on a transposed (non-contiguous) input: the fake's outputs are
    dense like the op's."""
    from comba_vision.ops.linear import _gelu_bwd_op
    h = torch.randn(24, 10, device=DEV).t()
    da = torch.randn(10, 24, device=DEV)
    assert set(torch.library.opcheck(_gelu_bwd_op, (h, da), test_utils=("test_schema", "test_faketensor")).values()) \
        == {"SUCCESS"}


def _fold_case(dev, dtype=torch.float32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    K = 40
    xh = torch.randn(2, 13, K, generator=gen)
    nw, nb = 1 + 0.4 * torch.randn(K, generator=gen), 0.3 * torch.randn(K, generator=gen)
    ws = [torch.randn(n, K, generator=gen) / K ** 0.5 for n in (24, 9, 3)]
    cs = [0.2 * torch.randn(n, generator=gen) for n in (24, 9, 3)]
    return [t.to(dev, dtype) for t in (xh, nw, nb, *ws, *cs)]


@pytest.mark.skipif(not TRITON_OK, reason="needs CUDA or TRITON_INTERPRET=1")
@pytest.mark.parametrize("case", ["pieces", "no_bias", "frozen", "many_pieces"])
def test_linear_fold_matches_float64(case):
    """linear(x^, w, b, fold=(w_n, b_n)) is F.linear(x^ * w_n + b_n, w, b): the output and the gradients of x^, every
    weight and bias piece (zero rows between them, a frozen one, none) and the folded norm's weight and bias against
    float64; more pieces than the fold kernels read in place (stacked first) give the same."""
    xh, nw, nb, w0, w1, w2, c0, c1, c2 = _fold_case(DEV)
    wp, bp = [w0, 4, w1, w2], [c0, 4, c1, c2]
    if case == "many_pieces":
        wp, bp = [w0, 4, w1, 2, w2, 1], [c0, 4, c1, 2, c2, 1]
    if case == "no_bias":
        bp = None
    leaves = [t for t in (xh, nw, nb, w0, w1, w2, c0, c1, c2)]

    def run(dt):
        ts = [t.detach().to(dt).requires_grad_(not (case == "frozen" and i == 4)) for i, t in enumerate(leaves)]
        x, a, b_, *rest = ts
        mp = {id(o): t for o, t in zip(leaves, ts, strict=True)}
        w = [mp[id(p)] if isinstance(p, torch.Tensor) else p for p in wp]
        b = None if bp is None else [mp[id(p)] if isinstance(p, torch.Tensor) else p for p in bp]
        if dt == torch.float64:
            from comba_vision.ops.linear import stack_pieces
            y = F.linear(x * a + b_, stack_pieces(w), None if b is None else stack_pieces(b))
        else:
            y = linear(x, w, b, fold=(a, b_))
        gen = torch.Generator().manual_seed(1)
        (y.double() * torch.randn(y.shape, generator=gen, dtype=torch.float64).to(y.device)).sum().backward()
        used = [t for i, t in enumerate(ts) if not (bp is None and i >= 6)]
        return y, [t.grad for t in used]

    y, grads = run(torch.float32)
    ref, ref_grads = run(torch.float64)
    assert rel_err(y, ref) <= 1e-5
    for i, (g, gr) in enumerate(zip(grads, ref_grads, strict=True)):
        if gr is None:
            assert g is None, i
        else:
            assert g.dtype == torch.float32 and rel_err(g, gr) <= 1e-5, i


@pytest.mark.skipif(not TRITON_OK, reason="needs CUDA or TRITON_INTERPRET=1")
def test_linear_fold_double_backward_and_bad_fold():
    """Under create_graph the folded layer's gradients come from PyTorch ops: the second derivatives are those of
    F.linear(x^ * w_n + b_n, w, b); a fold with act or of the wrong width is refused."""
    xh, nw, nb, w0, w1, w2, c0, c1, c2 = (t.double() for t in _fold_case(DEV))
    ts = [t.clone().requires_grad_() for t in (xh, nw, nb, w0, w1, c0, c1)]

    def second(fn):
        xs = [t.detach().clone().requires_grad_() for t in ts]
        y = fn(*xs)
        g = torch.autograd.grad((y * y).sum(), xs, create_graph=True)
        return torch.autograd.grad(sum((gi * gi).sum() for gi in g), xs)

    got = second(lambda x, a, b_, w0, w1, c0, c1: linear(x, [w0, w1], [c0, c1], fold=(a, b_)))
    ref = second(lambda x, a, b_, w0, w1, c0, c1: F.linear(x * a + b_, torch.cat([w0, w1]), torch.cat([c0, c1])))
    for g, r in zip(got, ref, strict=True):
        assert rel_err(g, r) <= 1e-6
    with pytest.raises(ValueError, match="act"):
        linear(xh, w0, c0, act="gelu", fold=(nw, nb))
    with pytest.raises(ValueError, match="shape"):
        linear(xh, w0, c0, fold=(nw[:5], nb))


@pytest.mark.skipif(not TRITON_OK, reason="needs CUDA or TRITON_INTERPRET=1")
def test_fold_ops_schema_and_fake_shapes():
    """torch.library.opcheck's schema and fake-tensor checks of the fold kernels' ops."""
    from comba_vision.ops.linear import _fold_bwd_op, _fold_fwd_op
    xh, nw, nb, w0, w1, w2, c0, c1, c2 = _fold_case(DEV)
    half = torch.bfloat16 if DEV == "cuda" else torch.float16
    utils = ("test_schema", "test_faketensor")
    args = ([w0, None, w1], [24, 28, 37], [c0, None, c1], [24, 28, 37], nw, nb, half)
    assert set(torch.library.opcheck(_fold_fwd_op, args, test_utils=utils).values()) == {"SUCCESS"}
    dw = torch.randn(37, 40, device=DEV)
    args = (dw, torch.randn(37, device=DEV), [w0, None, w1], [24, 28, 37], nw, nb)
    assert set(torch.library.opcheck(_fold_bwd_op, args, test_utils=utils).values()) == {"SUCCESS"}
