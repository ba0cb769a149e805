"""The mixer between its projections as one node (ops.mixer_joint) against the float64 PyTorch forms and against
the three nodes it replaces."""
from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F

from comba_vision.ops import comba_bidirectional
from comba_vision.ops.dwconv import dwconv_tokens
from comba_vision.ops.mixer_fused import mixer_out, mixer_out_torch, mixer_prep_torch, mixer_scan
from comba_vision.ops.mixer_joint import _joint_op, mixer_joint
from tests.ops.helpers import rel_err, spy_launches

TRITON_OK = torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1"
DEV = "cuda" if torch.cuda.is_available() else "cpu"
NAMES = ("dy", "conv_w", "conv_b", "A_log", "dt_bias", "b_logit", "d", "norm_w")


def _inputs(B, grid, H, K, V, pad, seed=0):
    """y [B, N, 2HK + 2H + 2HV + pad] (= [a | y_g | z | padding]) and the parameters (conv weight and bias,
    A_log, dt_bias, b_logit, d and the output norm's weight)."""
    gen = torch.Generator().manual_seed(seed)
    N = sum(h * w for h, w in grid)
    wa = 2 * H * K + H * V
    y = 2 * torch.randn(B, N, wa + 2 * H + H * V + pad, generator=gen)
    conv_w, conv_b = 0.3 * torch.randn(wa, 1, 3, 3, generator=gen), 0.1 * torch.randn(wa, generator=gen)
    params = [0.5 * torch.randn(H, generator=gen) for _ in range(4)]
    norm_w = 1 + 0.2 * torch.randn(V, generator=gen)
    return [y, conv_w, conv_b, *params, norm_w]


def _conv_torch(a, w, b, grid):
    B, _, C = a.shape
    outs, start = [], 0
    for h, wd in grid:
        t = a[:, start:start + h * wd].transpose(1, 2).reshape(B, C, h, wd)
        outs.append(F.conv2d(t, w, b, padding=1, groups=C).flatten(2).transpose(1, 2))
        start += h * wd
    return torch.cat(outs, 1)


def _split(y, H, K, V):
    """a, z, y_g of y = [a | y_g | z | padding], written out independently of mixer_joint._pieces."""
    wa, wg = 2 * H * K + H * V, H * V
    return y[..., :wa], y[..., wa + wg:wa + wg + 2 * H], y[..., wa:wa + wg]


def _reference(y, conv_w, conv_b, A_log, dt_bias, b_logit, d, norm_w, H, K, V, grid, variant):
    a, z, y_g = _split(y, H, K, V)
    q, k, v, p, g, beta = mixer_prep_torch(_conv_torch(a, conv_w, conv_b, grid), z, A_log, dt_bias, b_logit, d,
                                           H, K, V)
    o2 = comba_bidirectional(q, k, v, p, g, beta, variant=variant, merge="stack", backend="reference")
    return mixer_out_torch(o2, y_g, norm_w, 1e-5)


def _three_nodes(y, conv_w, conv_b, A_log, dt_bias, b_logit, d, norm_w, H, K, V, grid, variant):
    a, z, y_g = _split(y, H, K, V)
    o2 = mixer_scan(dwconv_tokens(a, conv_w, conv_b, grid), z, A_log, dt_bias, b_logit, d, H, K, V, variant=variant)
    return mixer_out(o2, y_g, norm_w, 1e-5)


def _run(fn, xs, seed=1):
    xs = [x.detach().requires_grad_() for x in xs]
    out = fn(*xs)
    gen = torch.Generator().manual_seed(seed)
    (out.double() * torch.randn(out.shape, generator=gen, dtype=torch.float64).to(out.device)).sum().backward()
    return out, [x.grad for x in xs]


@pytest.mark.skipif(not TRITON_OK, reason="needs CUDA or TRITON_INTERPRET=1")
@pytest.mark.parametrize("conv_in_prep, recompute", [("1", False), ("2", False), ("0", False), ("1", True),
                                                    ("2", True)])
@pytest.mark.parametrize("B, grid, H, K, V, pad, variant", [
    (2, [(5, 6)], 2, 16, 24, 3, "splr"), (1, [(4, 4), (3, 7)], 2, 32, 16, 0, "iplr")])
def test_mixer_joint_matches_float64(B, grid, H, K, V, pad, variant, conv_in_prep, recompute, monkeypatch):
    """Output and every gradient (y's, padding columns zero, and each parameter's) against the PyTorch conv, prep,
    float64 step recurrence of each direction and output norm; and against the three nodes it replaces (the
    same kernels: equal up to float32 rounding). With the conv inside the prep kernels (COMBA_CONV_IN_PREP, one
    launch a grid: two grids in the second case) or not, and with the work buffers rebuilt in the backward."""
    import comba_vision.ops.mixer_joint as mj
    import comba_vision.ops.triton_chunk as tc
    monkeypatch.setattr(mj, "CONV_IN_PREP", conv_in_prep)
    monkeypatch.setattr(tc, "RECOMPUTE_BUFFERS", recompute)
    xs = [x.to(DEV) for x in _inputs(B, grid, H, K, V, pad)]
    dims = (H, K, V, grid, variant)
    out, grads = _run(lambda *a: mixer_joint(*a[:8], H, K, V, grid, variant, eps=1e-5), xs)
    ref, ref_grads = _run(lambda *a: _reference(*a, *dims), [x.double() for x in xs])
    three, three_grads = _run(lambda *a: _three_nodes(*a, *dims), xs)
    assert out.shape == (B, sum(h * w for h, w in grid), H * V)
    assert rel_err(out, ref) <= 1e-4 and rel_err(out, three) <= 1e-6
    for name, g, r, t in zip(NAMES, grads, ref_grads, three_grads):
        assert rel_err(g, r) <= 1e-4, name
        assert rel_err(g, t) <= 1e-6, name
    if pad:
        assert grads[0][..., -pad:].abs().sum().item() == 0.0


@pytest.mark.skipif(not TRITON_OK, reason="needs CUDA or TRITON_INTERPRET=1")
def test_mixer_joint_shared_do(monkeypatch):
    """COMBA_SHARED_DO: the joint node writes the scans' sum's gradient once, [B, N, H, V], and the operator's
    backward kernels read it for both directions (DO_ONE): output and every gradient the same as with it written
    twice, and within the float64 bound."""
    import comba_vision.ops.triton_chunk as tc
    xs = [x.to(DEV) for x in _inputs(2, [(5, 6)], 2, 16, 24, 3)]
    dims = (2, 16, 24, [(5, 6)], "splr")
    runs = {}
    for on in (False, True):
        monkeypatch.setattr(tc, "SHARED_DO", on)
        launched = spy_launches(monkeypatch, tc, "DO_ONE")
        runs[on] = _run(lambda *a: mixer_joint(*a[:8], *dims, eps=1e-5), xs)
        assert {flag for name, flag in launched if name == "_bwd_grads"} == {on}
    ref, ref_grads = _run(lambda *a: _reference(*a, *dims), [x.double() for x in xs])
    (out, grads), (out0, grads0) = runs[True], runs[False]
    assert rel_err(out, out0) <= 1e-6 and rel_err(out, ref) <= 1e-4
    for name, g, g0, r in zip(NAMES, grads, grads0, ref_grads):
        assert rel_err(g, g0) <= 1e-6 and rel_err(g, r) <= 1e-4, name


@pytest.mark.skipif(not TRITON_OK, reason="needs CUDA or TRITON_INTERPRET=1")
@pytest.mark.parametrize("proj", [False, True])
def test_mixer_joint_op_schema_and_fake_shapes(proj):
    """torch.library.opcheck's schema and fake-tensor checks of the op (what torch.compile needs), with the output
    projection inside and without."""
    xs = [x.to(DEV) for x in _inputs(1, [(3, 3)], 2, 16, 16, 2)]
    pw = torch.randn(12, 32, device=DEV)
    args = (*xs, 2, 16, 16, [3, 3], 0.25, False, 1e-5, *((pw, pw) if proj else ()))
    assert set(torch.library.opcheck(_joint_op, args, test_utils=("test_schema", "test_faketensor")).values()) \
        == {"SUCCESS"}


@pytest.mark.skipif(not TRITON_OK, reason="needs CUDA or TRITON_INTERPRET=1")
def test_mixer_joint_with_the_output_projection_matches_float64():
    """proj_w: the node returns F.linear(output, proj_w) and gives proj_w its gradient (float32, from the gated
    output written again in the backward), every other gradient as without it, against float64; it keeps nothing
    of the projection's input width besides what it kept without."""
    B, grid, H, K, V = 2, [(5, 6)], 2, 16, 24
    xs = [x.to(DEV) for x in _inputs(B, grid, H, K, V, 3)]
    pw = (torch.randn(20, H * V, generator=torch.Generator().manual_seed(7)) / (H * V) ** 0.5).to(DEV)
    dims = (H, K, V, grid, "splr")
    out, grads = _run(lambda *a: mixer_joint(*a[:8], H, K, V, grid, "splr", eps=1e-5, proj_w=a[8]), [*xs, pw])
    ref, ref_grads = _run(lambda *a: F.linear(_reference(*a[:8], *dims), a[8]), [x.double() for x in (*xs, pw)])
    assert out.shape == (B, 30, 20) and rel_err(out, ref) <= 1e-4
    for name, g, r in zip([*NAMES, "proj_w"], grads, ref_grads, strict=True):
        assert g.dtype == torch.float32 and rel_err(g, r) <= 1e-4, name
    kept = {}
    with torch.autograd.graph.saved_tensors_hooks(lambda t: (kept.setdefault(id(t), t), t)[1], lambda t: t):
        mixer_joint(*[x.requires_grad_() for x in xs], H, K, V, grid, eps=1e-5, proj_w=pw.requires_grad_())
    assert not [t for t in kept.values() if t.shape[-1] == H * V and t.dim() == 3]


def _kept_shapes(B, grid, H, K, V):
    """Shapes of what a mixer_joint forward keeps for its backward."""
    xs = [x.to(DEV).requires_grad_() for x in _inputs(B, grid, H, K, V, 2)]
    kept = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: kept.append(t) or t, lambda t: t):
        mixer_joint(*xs, H, K, V, grid, eps=1e-5)
    return [tuple(t.shape) for t in kept]


@pytest.mark.skipif(not TRITON_OK, reason="needs CUDA or TRITON_INTERPRET=1")
@pytest.mark.parametrize("conv_in_prep", ["0", "1", "2"])
def test_mixer_joint_keeps_the_scans_sum_and_the_conv_output_by_mode(conv_in_prep, monkeypatch):
    """The node keeps the sum of both scans' outputs [B, N, H, V], not the [2, B, N, H, V] pair. COMBA_CONV_IN_PREP:
    it does not keep the conv's output c ("1" and "2"), nor q~, k, v, p, g, beta ("2": the backward forms them
    again); "0" keeps both."""
    import comba_vision.ops.mixer_joint as mj
    monkeypatch.setattr(mj, "CONV_IN_PREP", conv_in_prep)
    B, H, K, V = 1, 2, 16, 24
    shapes = _kept_shapes(B, [(4, 5)], H, K, V)
    assert (B, 20, H, V) in shapes and (2, B, 20, H, V) not in shapes
    assert ((B, 20, 2 * H * K + H * V) in shapes) == (conv_in_prep == "0")
    for shape in ((B, 20, H, K), (B, 20, H)):
        assert (shape in shapes) == (conv_in_prep != "2"), shape


def test_mixer_joint_names_bad_inputs():
    xs = _inputs(1, [(3, 3)], 2, 16, 16, 0)
    with pytest.raises(ValueError, match="y must be"):
        mixer_joint(xs[0][..., :-1], *xs[1:], 2, 16, 16, [(3, 3)])
    with pytest.raises(ValueError, match="do not cover"):
        mixer_joint(*xs, 2, 16, 16, [(3, 2)])
    with pytest.raises(ValueError, match="needs the conv's bias"):
        mixer_joint(xs[0], xs[1], None, *xs[3:], 2, 16, 16, [(3, 3)])
    with pytest.raises(ValueError, match="norm_w must be"):
        mixer_joint(*xs[:7], xs[7][:-1], 2, 16, 16, [(3, 3)])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="bf16 on the GPU")
def test_mixer_joint_in_the_mixer_bf16(monkeypatch):
    """A CombaMixer training step under bf16 autocast in the fused mode takes the joint node, and its output
    and gradients match the same mixer with the three nodes (COMBA_MIXER_JOINT off)."""
    import comba_vision.ops.mixer_joint as mj
    from comba_vision.layers import CombaMixer
    monkeypatch.setenv("COMBA_FUSED_LINEAR", "1")
    monkeypatch.setenv("COMBA_FUSED_CONV", "1")
    torch.manual_seed(0)
    mixer = CombaMixer(192, 3).cuda()
    x = torch.randn(4, 196, 192, device="cuda")
    dy = torch.randn(4, 196, 192, device="cuda")
    runs = []
    for joint in (True, False):
        monkeypatch.setattr(mj, "MIXER_JOINT", joint)
        assert mj.mixer_joint_applies(x, mixer.conv) == joint
        mixer.zero_grad()
        xg = x.clone().requires_grad_()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            y = mixer(xg, [(14, 14)])
        y.float().backward(dy)
        runs.append([y.float(), xg.grad] + [p.grad.clone() for p in mixer.parameters()])
    for i, (a, b) in enumerate(zip(*runs)):
        assert rel_err(a, b) <= 1e-2, i


@pytest.mark.skipif(not TRITON_OK, reason="needs CUDA or TRITON_INTERPRET=1")
def test_mixer_joint_projection_under_autocast_and_frozen():
    """With the output projection inside: under autocast the result stays in y's dtype (as the op's fake says) and
    the backward runs; with proj_w frozen the other gradients are unchanged and proj_w gets none."""
    B, grid, H, K, V = 1, [(3, 4)], 2, 16, 16
    xs = [x.to(DEV) for x in _inputs(B, grid, H, K, V, 2)]
    pw = torch.randn(8, H * V, generator=torch.Generator().manual_seed(3)).to(DEV)
    half = torch.bfloat16 if DEV == "cuda" else torch.float16
    with torch.autocast(DEV, dtype=half):
        out = mixer_joint(xs[0].clone().requires_grad_(), *xs[1:], H, K, V, grid, eps=1e-5, proj_w=pw)
    assert out.dtype == xs[0].dtype
    out.sum().backward()
    runs = []
    for frozen in (False, True):
        ts = [x.detach().clone().requires_grad_() for x in xs]
        w = pw.detach().clone().requires_grad_(not frozen)
        mixer_joint(*ts, H, K, V, grid, eps=1e-5, proj_w=w).square().sum().backward()
        runs.append([t.grad for t in ts] + [w.grad])
    assert runs[1][-1] is None and runs[0][-1] is not None
    for a, b in zip(runs[0][:-1], runs[1][:-1], strict=True):
        assert torch.equal(a, b)
