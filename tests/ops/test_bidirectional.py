"""comba_bidirectional: both scans merged, against the float64 step recurrence run in each direction."""
from __future__ import annotations

import os

import pytest
import torch

from comba_vision.ops import comba_bidirectional, comba_recurrent_reference
from tests.ops.helpers import make_inputs, rel_err, spy_launches

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
    o2 = comba_bidirectional(*xs, variant=variant, merge="stack", backend=backend)
    assert o2.shape == (2, *ref_f.shape) and rel_err(o2, torch.stack((ref_f, ref_r))) <= 1e-4


@pytest.mark.parametrize("T,variant", [(40, "splr"), (64, "iplr"), (7, "splr")])  # padded, whole chunks, < 1 chunk
def test_gradients_match_reference(T, variant):
    xs, _ = make_inputs(1, T, 2, 16, 16, seed=5)
    xs = [x.requires_grad_() for x in xs]
    do = torch.randn(1, T, 2, 16, dtype=torch.float64)
    comba_bidirectional(*xs, variant=variant, backend="torch").backward(do.float())
    x64 = [x.detach().double().requires_grad_() for x in xs]
    (comba_recurrent_reference(*x64, variant=variant)[0]
     + comba_recurrent_reference(*x64, variant=variant, reverse=True)[0]).backward(do)
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
    if tc.BT != 64:
        pytest.skip("the fused forward is written for 64-position chunks (COMBA_CHUNK_SIZE)")
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


@pytest.mark.skipif(not TRITON_OK, reason="needs CUDA or TRITON_INTERPRET=1")
@pytest.mark.parametrize("B, T, H, K, V, variant, merge, split, dtype", [
    (2, 1, 1, 16, 16, "splr", "sum", False, torch.float32), (1, 65, 2, 16, 32, "iplr", "none", False, torch.float32),
    (2, 130, 1, 32, 16, "splr", "mean", True, torch.float32),
    (1, 70, 1, 128, 128, "splr", "none", False, torch.float32),
    (1, 70, 2, 32, 96, "iplr", "none", False, torch.float32),  # head 32: precomputed products, one kernel
    pytest.param(4, 197, 3, 32, 64, "splr", "none", False, torch.bfloat16, marks=pytest.mark.gpu),
    pytest.param(2, 300, 2, 128, 128, "iplr", "sum", False, torch.bfloat16, marks=pytest.mark.gpu),
    # 33 chunks and few programs: the state kernels' grouped walk by default on the GPU
    pytest.param(1, 2100, 2, 32, 64, "splr", "none", False, torch.bfloat16, marks=pytest.mark.gpu)])
def test_one_launch_matches_reference(monkeypatch, B, T, H, K, V, variant, merge, split, dtype):
    """Both directions in the same kernel launches (COMBA_BIDIR_ONE_LAUNCH): outputs and every gradient
    against the float64 recurrence run in each direction. merge="none" back-propagates a different dO into
    each direction (the [2, B, T, H, V] layout of dO); split forces the two-kernel gradient path with its
    precomputed products at a small head size (from head size 64 it is the default)."""
    import comba_vision.ops.triton_chunk as tc
    monkeypatch.setattr(tc, "BIDIR_ONE_LAUNCH", True)
    if split:
        monkeypatch.setattr(tc, "SPLIT_BWD_MIN_BK", 16)
        monkeypatch.setattr(tc, "STATE_HALVES_MIN_BK", 16)
    _check_triton_bidir(B, T, H, K, V, variant, merge, dtype)


@pytest.mark.skipif(not TRITON_OK, reason="needs CUDA or TRITON_INTERPRET=1")
@pytest.mark.parametrize("B, T, H, K, V, variant, merge", [
    (1, 197, 2, 32, 64, "splr", "none"), (1, 300, 1, 16, 32, "iplr", "sum")])
def test_one_launch_grouped_state_walk(monkeypatch, B, T, H, K, V, variant, merge):
    """Both directions in the same launches with the state kernels' grouped walk forced (groups of two
    chunks; a short last chunk at T = 197, a whole one at T = 300 alone in the last group)."""
    import comba_vision.ops.triton_chunk as tc
    monkeypatch.setattr(tc, "BIDIR_ONE_LAUNCH", True)
    monkeypatch.setattr(tc, "STATE_GROUP", 2)
    _check_triton_bidir(B, T, H, K, V, variant, merge, torch.float32)


@pytest.mark.skipif(not TRITON_OK, reason="needs CUDA or TRITON_INTERPRET=1")
def test_two_calls_match_reference(monkeypatch):
    """COMBA_BIDIR_ONE_LAUNCH=0: the two directions as two calls of the single-direction operator."""
    import comba_vision.ops.function as fn
    import comba_vision.ops.triton_chunk as tc
    monkeypatch.setattr(tc, "BIDIR_ONE_LAUNCH", False)
    monkeypatch.setattr(fn, "comba_triton_both", lambda *a: pytest.fail("one-launch path used"))
    _check_triton_bidir(1, 65, 2, 16, 32, "iplr", "none", torch.float32)


def _check_triton_bidir(B, T, H, K, V, variant, merge, dtype):
    if dtype == torch.bfloat16 and not torch.cuda.is_available():
        pytest.skip("bf16 dots only on the GPU (the interpreter miscomputes them)")
    xs, _ = make_inputs(B, T, H, K, V, seed=T + K)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    xs = [x.to(dev, dtype).requires_grad_() for x in xs]
    # fp32: 1e-4 under the interpreter, 1e-3 on the GPU (reordered sums, as in test_comba_ops); bf16: 2e-2
    bound = 2e-2 if dtype == torch.bfloat16 else (1e-3 if dev == "cuda" else 1e-4)
    gen = torch.Generator().manual_seed(7)
    do_f, do_r = (torch.randn(B, T, H, V, generator=gen, dtype=torch.float64) for _ in range(2))
    out = comba_bidirectional(*xs, variant=variant, merge=merge, backend="triton")
    x64 = [x.detach().cpu().double().requires_grad_() for x in xs]
    ref_f = comba_recurrent_reference(*x64, variant=variant)[0]
    ref_r = comba_recurrent_reference(*x64, variant=variant, reverse=True)[0]
    if merge == "none":
        assert rel_err(out[0], ref_f) <= bound and rel_err(out[1], ref_r) <= bound
        torch.autograd.backward(out, [do_f.to(dev, dtype), do_r.to(dev, dtype)])
        ((ref_f * do_f).sum() + (ref_r * do_r).sum()).backward()
    else:
        ref = (ref_f + ref_r) * (0.5 if merge == "mean" else 1.0)
        assert rel_err(out, ref) <= bound
        out.backward(do_f.to(dev, dtype))
        ref.backward(do_f)
    for name, a, b in zip(("dq", "dk", "dv", "dp", "dg", "dbeta"), xs, x64):
        assert rel_err(a.grad, b.grad) <= bound, name


@pytest.mark.skipif(not TRITON_OK, reason="needs CUDA or TRITON_INTERPRET=1")
def test_one_launch_custom_ops_schema_and_fake_shapes():
    """The custom ops with reverse=BOTH pass torch.library.opcheck's schema and fake-tensor checks (what
    torch.compile relies on): fake outputs have the real outputs' shapes, [2, B, T, H, V] for o."""
    from comba_vision.ops.function import chunk_bwd, chunk_fwd
    from comba_vision.ops.triton_chunk import BOTH
    xs, _ = make_inputs(1, 17, 2, 16, 16, seed=2)
    if torch.cuda.is_available():
        xs = [x.cuda() for x in xs]
    checks = ("test_schema", "test_faketensor")
    fwd_args = (*xs, 0.25, None, False, False, BOTH)
    assert set(torch.library.opcheck(chunk_fwd, fwd_args, test_utils=checks).values()) == {"SUCCESS"}
    o, _, M, W, U, h = chunk_fwd(*fwd_args)
    assert o.shape == (2, *xs[2].shape)
    bwd_args = (*xs, M, W, U, h, torch.randn_like(o), None, 0.25, False, False, BOTH)
    assert set(torch.library.opcheck(chunk_bwd, bwd_args, test_utils=checks).values()) == {"SUCCESS"}
    # both directions' gradients unsummed (what mixer_scan's backward takes): [2, *input.shape]
    split = chunk_bwd(*bwd_args, False)
    assert set(torch.library.opcheck(chunk_bwd, (*bwd_args, False), test_utils=checks).values()) == {"SUCCESS"}
    for a, b, x in zip(split[:6], chunk_bwd(*bwd_args)[:6], xs):
        assert a.shape == (2, *x.shape) and rel_err(a.sum(0), b) <= 1e-6
    # COMBA_SHARED_DO: the summed forward, and the backward with one dO for both directions
    from comba_vision.ops.function import chunk_fwd_sum
    sum_args = (*xs, 0.25, False)
    assert set(torch.library.opcheck(chunk_fwd_sum, sum_args, test_utils=checks).values()) == {"SUCCESS"}
    o1 = chunk_fwd_sum(*sum_args)[0]
    assert o1.shape == xs[2].shape and rel_err(o1, o[0] + o[1]) <= 1e-6
    one_args = (*xs, M, W, U, h, torch.randn_like(o1), None, 0.25, False, False, BOTH)
    assert set(torch.library.opcheck(chunk_bwd, one_args, test_utils=checks).values()) == {"SUCCESS"}
    with pytest.raises(ValueError, match="do must be shaped like the output"):
        chunk_bwd(*xs, M, W, U, h, torch.randn(3, *o1.shape, device=o1.device), None, 0.25, False, False, BOTH)
    # half-precision gates: summed gradients come back in their dtype, unsummed ones in float32 (fake as real)
    half = [*xs[:4], xs[4].half(), xs[5].half()]
    for rev, summed in ((0, True), (BOTH, True), (BOTH, False)):
        do = torch.randn((2, *xs[2].shape) if rev == BOTH else xs[2].shape, device=xs[2].device)
        args = (*half, M, W, U, h, do, None, 0.25, False, False, rev, summed)
        assert set(torch.library.opcheck(chunk_bwd, args, test_utils=checks).values()) == {"SUCCESS"}


@pytest.mark.skipif(not TRITON_OK, reason="needs CUDA or TRITON_INTERPRET=1")
@pytest.mark.parametrize("B, T, H, K, V, variant, merge, walk", [
    (1, 150, 2, 64, 48, "splr", "sum", "ordered"), (2, 70, 2, 32, 64, "iplr", "mean", "recompute"),
    (1, 200, 1, 32, 32, "splr", "sum", "transition"), (1, 200, 1, 16, 32, "iplr", "sum", "grouped"),
    (1, 70, 1, 128, 32, "splr", "mean", "plain")])
def test_shared_do(monkeypatch, B, T, H, K, V, variant, merge, walk):
    """COMBA_SHARED_DO: merge "sum" / "mean" through chunk_fwd_sum, whose backward reads one [B, T, H, V] dO for both
    directions (every backward kernel that reads dO launched with DO_ONE), with both directions' outputs and gradients
    summed atomically (ATOMIC_SUM, the default). Output and every gradient the same as with dO stacked per direction
    and the pairs summed by adds (the same kernels on the same values), and against the float64 recurrence: a
    short last chunk on its tile at head size 64 with the gradient kernel in its ordered form (ORDERED_GRADS, the
    bf16 default on a GPU), the buffers rebuilt in the backward (recompute), the transition walk with its maps
    from _chunk_affine (whose backward reads dO), the grouped state walk, and head size 128 (the split gradient
    kernels and the K-halves state walk)."""
    import comba_vision.ops.triton_chunk as tc
    monkeypatch.setattr(tc, "BIDIR_ONE_LAUNCH", True)
    monkeypatch.setattr(tc, "RECOMPUTE_BUFFERS", walk == "recompute")
    if walk == "ordered":
        monkeypatch.setattr(tc, "ORDERED_GRADS", "1")
    if walk == "transition":
        monkeypatch.setattr(tc, "TRANSITION_WALK", "1")
        monkeypatch.setattr(tc, "TRANSITION_FOLD", "0")
    if walk == "grouped":
        monkeypatch.setattr(tc, "STATE_GROUP", 2)
    launched = spy_launches(monkeypatch, tc, record=lambda name, args, meta: (
        name, meta.get("DO_ONE"), meta.get("BACKWARD", True), meta.get("OUT_ADD"), meta.get("OUTPUT", True)))
    xs, _ = make_inputs(B, T, H, K, V, seed=T + K)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    xs = [x.to(dev) for x in xs]
    do = torch.randn(B, T, H, V, generator=torch.Generator().manual_seed(8)).to(dev)
    res = {}
    for on in (False, True):
        monkeypatch.setattr(tc, "SHARED_DO", on)
        monkeypatch.setattr(tc, "ATOMIC_SUM", on)  # the reference: the pairs of outputs and gradients, summed by adds
        launched.clear()
        x = [t.detach().requires_grad_() for t in xs]
        o = comba_bidirectional(*x, variant=variant, merge=merge, backend="triton")
        o.backward(do)
        res[on] = [o.detach()] + [t.grad for t in x]
        readers = {"_bwd_dv_local", "_bwd_state", "_bwd_state_halves", "_chunk_affine", "_bwd_grads",
                   "_bwd_grads_cc", "_bwd_grads_k"}
        # every backward launch of a kernel that reads dO carries DO_ONE (_chunk_affine's forward ones do not read it)
        backward = [(name, flag) for name, flag, bwd, *_ in launched if name in readers and bwd]
        assert {flag for _, flag in backward} == {on}, launched
        # the launches that write the output add both directions into one o (OUT_ADD) exactly when ATOMIC_SUM is on
        out = {add for name, _, _, add, output in launched if name in ("_fwd_state", "_fwd_output") and output}
        assert out == {on}, launched
        if walk == "transition":
            assert ("_chunk_affine", on) in backward
    for a, b in zip(res[True], res[False]):
        assert rel_err(a, b) <= 1e-6
    x64 = [x.detach().cpu().double().requires_grad_() for x in xs]
    ref = (comba_recurrent_reference(*x64, variant=variant)[0]
           + comba_recurrent_reference(*x64, variant=variant, reverse=True)[0]) * (0.5 if merge == "mean" else 1.0)
    ref.backward(do.cpu().double())
    bound = 1e-3 if dev == "cuda" else 1e-4
    assert rel_err(res[True][0], ref) <= bound
    for name, a, b in zip(("dq", "dk", "dv", "dp", "dg", "dbeta"), res[True][1:], x64):
        assert rel_err(a, b.grad) <= bound, name


@pytest.mark.skipif(not TRITON_OK, reason="needs CUDA or TRITON_INTERPRET=1")
@pytest.mark.parametrize("B, T, H, K, V, variant, walk", [
    (1, 150, 2, 32, 48, "splr", "transition"), (2, 97, 1, 64, 32, "iplr", "transition"),
    (1, 128, 1, 32, 32, "splr", "transition"), (1, 200, 1, 16, 32, "iplr", "grouped"),
    (1, 129, 2, 32, 16, "splr", "plain"), (1, 130, 1, 32, 32, "iplr", "recompute"),
    (1, 150, 2, 64, 48, "splr", "ordered"), (1, 150, 2, 32, 64, "iplr", "folded"),
    (2, 300, 2, 64, 64, "splr", "bf16"), (2, 300, 2, 32, 64, "iplr", "bf16")])
def test_aligned_directions(monkeypatch, B, T, H, K, V, variant, walk):
    """COMBA_ALIGN_BOTH: both directions on the same token blocks, the forward scan starting with 64 NT - T identity
    steps (every chunk on a whole tile: the short last chunk's tile off). Every launch of the operator runs with
    REVERSE 3; after the transition walk one _fwd_output_both launch over (NT, B * H) writes the summed output (no
    _fwd_output; with the buffers rebuilt in the backward, that rebuild's _fwd_output completes u only), and in every
    walk one _bwd_grads_both launch sums both directions' gradients in order, one program per token block. Output and
    every gradient as the unaligned launches give them (other chunk boundaries: float32
    rounding apart) and within the float64 recurrence's bound; T = 128 has no padding at all; the maps written by the
    prepare and _bwd_dv_local (folded); on a GPU bf16 inputs with the defaults' bf16 products and ordered gradient
    kernel (the interpreter miscomputes bf16 dots)."""
    import comba_vision.ops.triton_chunk as tc
    bf16 = walk == "bf16"
    if bf16 and not torch.cuda.is_available():
        pytest.skip("bf16 dots only on the GPU (the interpreter miscomputes them)")
    monkeypatch.setattr(tc, "TAIL_TILE", False)
    monkeypatch.setattr(tc, "RECOMPUTE_BUFFERS", walk == "recompute")
    monkeypatch.setattr(tc, "TRANSITION_WALK", "1" if walk in ("transition", "recompute", "folded", "bf16") else "0")
    monkeypatch.setattr(tc, "TRANSITION_FOLD", "1" if walk == "folded" else "auto" if bf16 else "0")
    if walk == "grouped":
        monkeypatch.setattr(tc, "STATE_GROUP", 2)
    if walk == "ordered":  # the gradient kernel's ordered form (the bf16 default on a GPU)
        monkeypatch.setattr(tc, "ORDERED_GRADS", "1")
    xs, _ = make_inputs(B, T, H, K, V, seed=T + K)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if bf16 else torch.float32
    xs = [x.to(dev, dtype) for x in xs]
    do = torch.randn(B, T, H, V, generator=torch.Generator().manual_seed(8)).to(dev, dtype)
    res, launch = {}, tc._launch
    for on in (False, True):
        monkeypatch.setattr(tc, "ALIGN_BOTH", on)
        launched = spy_launches(monkeypatch, tc, record=lambda name, args, meta: (name, meta.get("REVERSE")))
        x = [t.detach().requires_grad_() for t in xs]
        o = comba_bidirectional(*x, variant=variant, backend="triton")
        o.backward(do)
        res[on] = [o.detach()] + [t.grad for t in x]
        monkeypatch.setattr(tc, "_launch", launch)
        names = [n for n, _ in launched]
        assert {r for n, r in launched if r is not None} == {3 if on else 2}, launched
        both = on and walk in ("transition", "recompute", "folded", "bf16")
        assert names.count("_fwd_output_both") == (1 if both else 0), names
        # the gradients of both directions from one program per token block (every walk)
        assert (names.count("_bwd_grads_both"), names.count("_bwd_grads")) == ((1, 0) if on else (0, 1)), names
        if both:
            assert names.count("_fwd_output") == (1 if walk == "recompute" else 0), names
    # the same up to rounding at other chunk boundaries (bf16: the products' and the stored buffers' rounding)
    same = 2e-2 if bf16 else 1e-4 if dev == "cuda" else 1e-5
    for a, b in zip(res[True], res[False]):
        assert rel_err(a, b) <= same
    x64 = [x.detach().cpu().double().requires_grad_() for x in xs]
    ref = (comba_recurrent_reference(*x64, variant=variant)[0]
           + comba_recurrent_reference(*x64, variant=variant, reverse=True)[0])
    ref.backward(do.cpu().double())
    bound = 2e-2 if bf16 else 1e-3 if dev == "cuda" else 1e-4
    assert rel_err(res[True][0], ref) <= bound
    for name, a, b in zip(("dq", "dk", "dv", "dp", "dg", "dbeta"), res[True][1:], x64):
        assert rel_err(a, b.grad) <= bound, name
