"""Correctness of every Comba backend against the float64 step recurrence (output, state, gradients)."""
from __future__ import annotations

import itertools
import os

import pytest
import torch

from comba_vision.ops import comba, comba_bidirectional, comba_chunk_torch, comba_recurrent_reference
from tests.ops.helpers import compare_to_reference, make_inputs, poison_allocations, rel_err, spy_launches

HAS_CUDA = torch.cuda.is_available()
INTERPRETING = os.environ.get("TRITON_INTERPRET", "0") == "1"
# "triton" on CPU tensors runs under TRITON_INTERPRET=1 (set by conftest.py when there is no GPU)
CPU_BACKENDS = ["torch", "triton"] if INTERPRETING else ["torch"]

# (T, H, K, V, init, reverse, variant, dtype): every T in {1, 17, 64, 65, 197}, H in {1, 2, 3}, K = V and
# K != V, with/without initial state, both directions, both variants, fp32 and fp16.
CASES = [
    (1, 1, 16, 16, True, False, "splr", torch.float32),
    (1, 3, 16, 32, False, True, "iplr", torch.float32),
    (17, 3, 32, 16, False, True, "iplr", torch.float32),
    (17, 1, 16, 16, True, False, "splr", torch.float16),
    (64, 1, 32, 32, True, True, "splr", torch.float16),
    (64, 3, 16, 16, False, False, "iplr", torch.float32),
    (65, 3, 16, 32, True, False, "iplr", torch.float32),
    (65, 1, 16, 16, False, True, "splr", torch.float16),
    (197, 2, 64, 64, True, True, "splr", torch.float32),
    (197, 1, 32, 16, False, False, "iplr", torch.float16),
    (197, 2, 16, 16, True, True, "iplr", torch.float16),
    (130, 1, 128, 128, True, False, "splr", torch.float32),
    (70, 1, 48, 100, True, True, "splr", torch.float32),
]
# all eight (initial state, direction, variant) combinations at one shape that spans two chunks
CASES += [(65, 2, 16, 32, init, rev, var, torch.float32)
          for init, rev, var in itertools.product([False, True], [False, True], ["splr", "iplr"])]

BOUND = {torch.float32: 1e-4, torch.float16: 5e-3, torch.bfloat16: 2e-2}


def _case_id(c):
    T, H, K, V, init, rev, var, dt = c
    return f"T{T}-H{H}-K{K}-V{V}-{'h0' if init else 'noh0'}-{'rev' if rev else 'fwd'}-{var}-{str(dt)[6:]}"


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_cpu_matches_reference(case, backend):
    T, H, K, V, init, reverse, variant, dtype = case
    xs, h0 = make_inputs(2, T, H, K, V, dtype=dtype, init=init, seed=T + H + K)
    errs = compare_to_reference(xs, h0, variant=variant, reverse=reverse, backend=backend)
    bad = {k: v for k, v in errs.items() if not v <= BOUND[dtype]}
    assert not bad, f"relative errors above {BOUND[dtype]}: {bad} (all: {errs})"


def test_strong_decay_and_scale():
    """Fast forgetting and a non-default scale, where decay bookkeeping mistakes show most."""
    xs, h0 = make_inputs(1, 97, 2, 16, 16, init=True, decay=4.0, seed=3)
    for backend in CPU_BACKENDS:
        errs = compare_to_reference(xs, h0, variant="splr", reverse=True, backend=backend, scale=0.7)
        assert max(errs.values()) <= 1e-4, (backend, errs)


def test_reference_matches_paper_matrix_form():
    """The step form equals the paper's S_t = S_{t-1}(alpha I - b beta k k^T) + beta v k^T (S is V x K)."""
    B, T, H, K, V = 1, 9, 2, 8, 5
    (q, k, v, p, g, beta), h0 = make_inputs(B, T, H, K, V, init=True, dtype=torch.float64)
    h0 = h0.double()
    b = torch.sigmoid(torch.randn(H, dtype=torch.float64))      # per-head feedback strength
    p = k * b[:, None]
    for variant in ("splr", "iplr"):
        o, ht = comba_recurrent_reference(q, k, v, p, g, beta, 1.0, h0, True, variant=variant)
        S = h0.transpose(-1, -2).clone()                          # paper layout [B, H, V, K]
        eye = torch.eye(K, dtype=torch.float64)
        for t in range(T):
            a = g[:, t].exp()[..., None, None]
            bt = (b * beta[:, t])[..., None, None]
            kk = k[:, t, :, :, None] * k[:, t, :, None, :]
            trans = a * eye - bt * kk if variant == "splr" else a * (eye - 2 * bt * kk)
            S = S @ trans + beta[:, t, :, None, None] * v[:, t, :, :, None] * k[:, t, :, None, :]
            o_t = torch.einsum("bhvk,bhk->bhv", S, q[:, t])
            assert rel_err(o[:, t], o_t) < 1e-12
        assert rel_err(ht, S.transpose(-1, -2)) < 1e-12


def test_gradcheck_torch_path():
    xs, h0 = make_inputs(1, 11, 2, 4, 3, dtype=torch.float64, init=True, seed=5)
    h0 = h0.double()
    inputs = [x.clone().requires_grad_() for x in xs] + [h0.requires_grad_()]
    for variant, reverse in (("splr", False), ("iplr", True)):
        def fn(q, k, v, p, g, beta, h, variant=variant, reverse=reverse):
            o, ht = comba_chunk_torch(q, k, v, p, g, beta, 0.5, h, True, variant=variant, reverse=reverse,
                                      chunk_size=4)
            return o, ht
        assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-7, rtol=1e-5)


def test_non_contiguous_inputs():
    xs, h0 = make_inputs(2, 40, 3, 16, 16, init=True, seed=7)
    # non-contiguous views holding the same values
    nc = [torch.cat([x, x], dim=-1)[..., : x.shape[-1]] if x.dim() == 4 else x.transpose(0, 1).contiguous()
          .transpose(0, 1) for x in xs]
    assert not any(x.is_contiguous() for x in nc)
    for backend in CPU_BACKENDS:
        o1, h1 = comba(*xs, initial_state=h0, output_final_state=True, backend=backend)
        o2, h2 = comba(*nc, initial_state=h0, output_final_state=True, backend=backend)
        assert rel_err(o2, o1) < 1e-6 and rel_err(h2, h1) < 1e-6


def test_dispatch_env_var(monkeypatch):
    xs, _ = make_inputs(1, 5, 1, 16, 16)
    ref, _ = comba(*xs, backend="reference")
    monkeypatch.setenv("COMBA_BACKEND", "reference")
    o, ht = comba(*xs)
    assert ht is None
    assert torch.equal(o, ref)
    monkeypatch.setenv("COMBA_BACKEND", "nonsense")
    with pytest.raises(ValueError, match="unknown backend"):
        comba(*xs)


@pytest.mark.skipif(not INTERPRETING, reason="interpreter tests run where there is no GPU")
def test_triton_refuses_cpu_without_interpreter(monkeypatch):
    xs, _ = make_inputs(1, 5, 1, 16, 16)
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(ValueError, match="CUDA"):
        comba(*xs, backend="triton")


def _bad(**over):
    xs, _ = make_inputs(2, 8, 3, 16, 16)
    args = dict(zip(["q", "k", "v", "p", "g", "beta"], xs))
    args.update(over)
    return args


@pytest.mark.parametrize("over, match", [
    (dict(k=torch.randn(2, 9, 3, 16)), "k has shape"),
    (dict(v=torch.randn(1, 8, 3, 16)), r"v has shape"),
    (dict(p=torch.randn(2, 8, 2, 16)), "p has shape"),
    (dict(q=torch.randn(2, 8, 16)), "q must have rank 4"),
    (dict(g=torch.randn(2, 8, 3, 1)), "g must have rank 3"),
    (dict(g=torch.randn(2, 8, 2)), "g has shape"),
    (dict(beta=torch.rand(2, 7, 3)), "beta has shape"),
    (dict(q=torch.randn(2, 8, 3, 300), k=torch.randn(2, 8, 3, 300), p=torch.randn(2, 8, 3, 300)),
     "unsupported head size"),
    (dict(v=torch.randint(0, 5, (2, 8, 3, 16))), "v has dtype torch.int64"),
    (dict(g=torch.zeros(2, 8, 3, dtype=torch.int32)), "g has dtype"),
    (dict(beta=torch.rand(2, 8, 3, device="meta")), "one device"),
])
def test_bad_inputs(over, match):
    with pytest.raises(ValueError, match=match):
        comba(**_bad(**over))


def test_bad_initial_state_and_variant():
    with pytest.raises(ValueError, match="initial_state has shape"):
        comba(**_bad(), initial_state=torch.zeros(2, 3, 16, 8))
    with pytest.raises(ValueError, match="variant"):
        comba(**_bad(), variant="dplr")


def test_empty_sequence():
    xs, h0 = make_inputs(2, 0, 3, 16, 8, init=True)
    o, ht = comba(*xs, initial_state=h0, output_final_state=True)
    assert o.shape == (2, 0, 3, 8) and torch.equal(ht, h0)


@pytest.mark.skipif(not INTERPRETING, reason="the Triton backend on CPU tensors needs TRITON_INTERPRET=1")
def test_triton_grads_of_the_final_state_alone():
    """A loss on the final state only: the output's gradient is None (not materialised as zeros) and the
    backward stands in zeros for it; the gradients match the float64 recurrence's."""
    xs, h0 = make_inputs(1, 70, 2, 16, 16, init=True, seed=5)
    grads = {}
    for backend, dtype in (("triton", torch.float32), ("reference", torch.float64)):
        leaves = [x.detach().to(dtype).requires_grad_() for x in (*xs, h0)]
        *ins, h = leaves
        if backend == "triton":
            _, ht = comba(*ins, initial_state=h, output_final_state=True, backend="triton")
        else:
            _, ht = comba_recurrent_reference(*ins, initial_state=h, output_final_state=True)
        (ht.double() ** 2).sum().backward()
        grads[backend] = [x.grad for x in leaves]
    dq, dq_ref = grads["triton"][0], grads["reference"][0]
    assert dq_ref is None and (dq is None or not dq.any())  # q reaches the output only
    errs = [rel_err(a, b) for a, b in zip(grads["triton"][1:], grads["reference"][1:])]
    assert max(errs) < 1e-4, errs


@pytest.mark.skipif(not INTERPRETING, reason="the Triton backend on CPU tensors needs TRITON_INTERPRET=1")
def test_work_buffers_get_no_zero_gradients():
    """The float32 work buffers (M, W, U, h) are outputs of the custom op only to reach the backward: its
    formula gets None for them, not tensors of zeros that autograd would fill per layer and step."""
    import sys
    fn = sys.modules["comba_vision.ops.function"]
    seen = []
    real = fn._backward

    def spy(ctx, do, dht, dM, dW, dU, dh):
        seen.append([x is None for x in (dM, dW, dU, dh)])
        return real(ctx, do, dht, dM, dW, dU, dh)
    fn.chunk_fwd.register_autograd(spy, setup_context=fn._setup_context)
    try:
        xs, _ = make_inputs(1, 20, 1, 16, 16, seed=2)
        leaves = [x.requires_grad_() for x in xs]
        o, _ = comba(*leaves, backend="triton")
        o.sum().backward()
    finally:
        fn.chunk_fwd.register_autograd(real, setup_context=fn._setup_context)
    assert seen == [[True] * 4] and all(x.grad is not None for x in leaves)


# ---------------------------------------------------------------- GPU (run on the device machine)
GPU_CASES = CASES + [c[:7] + (torch.bfloat16,) for c in CASES]


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs CUDA")
@pytest.mark.parametrize("case", GPU_CASES, ids=_case_id)
def test_gpu_matches_reference(case):
    T, H, K, V, init, reverse, variant, dtype = case
    xs, h0 = make_inputs(2, T, H, K, V, dtype=dtype, init=init, seed=T + H + K, device="cuda")
    errs = compare_to_reference(xs, h0, variant=variant, reverse=reverse, backend="triton")
    bound = 1e-3 if dtype == torch.float32 else BOUND[dtype]  # GPU fp32: TF32-free, but reordered sums
    bad = {k: v for k, v in errs.items() if not v <= bound}
    assert not bad, f"relative errors above {bound}: {bad} (all: {errs})"


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs CUDA")
@pytest.mark.parametrize("shape", [(2, 197, 3, 64), (2, 300, 2, 128), (1, 1025, 2, 64)])
def test_gpu_bf16_no_worse_than_fla(shape):
    """bf16 errors against the float64 reference, ours vs fla 0.6.0's chunk_comba on the same inputs."""
    fla_comba = pytest.importorskip("fla.ops.comba").chunk_comba
    import fla.ops.common.chunk_o as chunk_o
    chunk_o.TRITON_ABOVE_3_7_1 = True  # fla refuses its gated backward on Hopper + Triton 3.6; measure anyway
    B, T, H, K = shape
    xs, _ = make_inputs(B, T, H, K, K, dtype=torch.bfloat16, init=True, seed=11, device="cuda")
    h0 = torch.randn(B, H, K, K, device="cuda")
    ours = compare_to_reference(xs, h0, variant="splr", reverse=False, backend="triton")

    import tests.ops.helpers as hp
    o, ht, grads = hp.run_with_grads(lambda q, k, v, p, g, b, h: fla_comba(q, k, v, p, g, b, None, h, True), xs, h0)
    ro, rht, rgrads = hp.run_with_grads(
        lambda q, k, v, p, g, b, h: comba_recurrent_reference(q, k, v, p, g, b, None, h, True),
        [x.detach().cpu().double() for x in xs], h0.cpu().double())
    theirs = {"o": rel_err(o, ro), "ht": rel_err(ht, rht)}
    theirs.update({n: rel_err(a, b) for n, a, b in zip(hp.GRAD_NAMES, grads, rgrads)})
    print(f"\nbf16 {shape} ours {ours}\nbf16 {shape} fla  {theirs}")
    assert max(ours.values()) <= 2e-2
    worse = {k: (ours[k], theirs[k]) for k in ours if ours[k] > theirs[k] * 1.05 + 1e-4}
    assert not worse, f"worse than fla: {worse}"


@pytest.mark.skipif(not INTERPRETING, reason="interpreter tests run where there is no GPU")
@pytest.mark.parametrize("variant, reverse, K, V, split, halves", [
    ("splr", False, 32, 48, True, True), ("iplr", True, 32, 48, True, False), ("iplr", False, 48, 100, False, True),
    ("splr", True, 16, 48, False, False)])
def test_precomputed_products_at_small_head_size(monkeypatch, variant, reverse, K, V, split, halves):
    """The backward with its K-wide per-token products made in _bwd_dv_local / _bwd_state (default from head
    size 128) forced on at small head sizes: with the two-kernel gradient path, and with the one-kernel
    path (several V blocks, so the per-V-block partial sums of _bwd_state are summed); and the state
    kernel in K halves (default from head size 128; K = 48 leaves the second half partly masked)."""
    import comba_vision.ops.triton_chunk as tc
    monkeypatch.setattr(tc, "PRE_MIN_BK", 16)
    monkeypatch.setattr(tc, "SPLIT_BWD_MIN_BK", 16 if split else 1 << 30)
    monkeypatch.setattr(tc, "STATE_HALVES_MIN_BK", 16 if halves else 1 << 30)
    xs, h0 = make_inputs(2, 97, 2, K, V, init=True, seed=4)
    errs = compare_to_reference(xs, h0, variant=variant, reverse=reverse, backend="triton")
    assert max(errs.values()) <= 1e-4, errs


@pytest.mark.skipif(not INTERPRETING, reason="interpreter tests run where there is no GPU")
@pytest.mark.parametrize("T, K, V, variant, reverse", [
    (196, 32, 100, "iplr", True), (97, 48, 64, "splr", False), (70, 16, 40, "splr", True)])
def test_ordered_gradient_kernel(monkeypatch, T, K, V, variant, reverse):
    """The one-kernel gradient kernel in both orders (COMBA_ORDERED_GRADS "1" and "0"; "auto" takes the ordered one
    only with bf16 products, which the interpreter cannot run) with the precomputed products: against the float64
    reference, and the two orders' gradients within float32 rounding of each other. Several V blocks with a masked
    last one (V = 100, 40), the short last chunk's 16-row tile (T = 196: 4 positions; T = 70: 6), IPLR, the reverse
    scan, an initial and a final state; the launches checked to have taken each order."""
    import comba_vision.ops.triton_chunk as tc
    monkeypatch.setattr(tc, "PRE_MIN_BK", 16)
    monkeypatch.setattr(tc, "SPLIT_BWD_MIN_BK", 1 << 30)
    xs, h0 = make_inputs(2, T, 2, K, V, init=True, seed=T + K)
    grads = {}
    for order in ("1", "0"):
        monkeypatch.setattr(tc, "ORDERED_GRADS", order)
        launched = spy_launches(monkeypatch, tc, "ORDERED")
        errs = compare_to_reference(xs, h0, variant=variant, reverse=reverse, backend="triton")
        assert max(errs.values()) <= 1e-4, (order, errs)
        assert {o for n, o in launched if n == "_bwd_grads"} == {order == "1"}, launched
        x = [t.detach().clone().requires_grad_() for t in xs]
        h = h0.detach().clone().requires_grad_()
        o, ht = comba(*x, initial_state=h, output_final_state=True, variant=variant, reverse=reverse,
                      backend="triton")
        (o.square().sum() + ht.square().sum()).backward()
        grads[order] = [t.grad for t in (*x, h)]
    for a, b in zip(grads["1"], grads["0"]):
        assert ((a - b).norm() / b.norm()).item() <= 1e-5


@pytest.mark.skipif(not INTERPRETING, reason="interpreter tests run where there is no GPU")
@pytest.mark.parametrize("T, K, V, variant, reverse, init", [
    (1, 16, 16, "splr", False, True), (17, 32, 16, "iplr", True, False), (70, 48, 100, "splr", True, True),
    (130, 64, 64, "iplr", False, True)])
def test_row_substitution_prepare_kernel(monkeypatch, T, K, V, variant, reverse, init):
    """The whole-tile row-substitution inverse (COMBA_BLOCKED_INVERSE=0) against the reference."""
    import comba_vision.ops.triton_chunk as tc
    monkeypatch.setattr(tc, "BLOCKED_INVERSE", False)
    xs, h0 = make_inputs(2, T, 2, K, V, init=init, seed=6)
    errs = compare_to_reference(xs, h0, variant=variant, reverse=reverse, backend="triton")
    assert max(errs.values()) <= 1e-4, errs


@pytest.mark.skipif(not (INTERPRETING or HAS_CUDA), reason="needs CUDA or TRITON_INTERPRET=1")
@pytest.mark.parametrize("T, K, V, variant, reverse, doubling",
                         [(17, 32, 16, "iplr", True, True), (130, 64, 64, "splr", False, False)])
def test_diagonal_inverse_variants_prepare_kernel(monkeypatch, T, K, V, variant, reverse, doubling):
    """The diagonal blocks of the blocked inverse by repeated squaring (the default) and by row substitution
    (COMBA_DOUBLING_INVERSE=0), whichever the module default is."""
    import comba_vision.ops.triton_chunk as tc
    monkeypatch.setattr(tc, "DOUBLING_INVERSE", doubling)
    xs, h0 = make_inputs(2, T, 2, K, V, init=True, seed=8)
    if HAS_CUDA:
        xs, h0 = [x.cuda() for x in xs], h0.cuda()
    errs = compare_to_reference(xs, h0, variant=variant, reverse=reverse, backend="triton")
    assert max(errs.values()) <= (1e-4 if INTERPRETING else 1e-3), errs


@pytest.mark.skipif(not (INTERPRETING or HAS_CUDA), reason="needs CUDA or TRITON_INTERPRET=1")
@pytest.mark.parametrize("T, K, V, variant, reverse, group", [
    (70, 16, 32, "iplr", True, 0), (130, 32, 16, "splr", False, 0), (130, 16, 16, "iplr", True, 2)])
def test_recomputed_work_buffers_give_the_same_gradients(monkeypatch, T, K, V, variant, reverse, group):
    """COMBA_RECOMPUTE_BUFFERS: the backward rebuilds M, W, U, h instead of keeping them. The outputs and
    gradients are those of the default path bit for bit (same kernels), and what autograd keeps shrinks by
    exactly the work buffers (less the initial state, which it then keeps). group: the state kernels'
    grouped walk forced, in the forward, the rebuild and the backward."""
    import math

    import comba_vision.ops.triton_chunk as tc
    from tests.ops.helpers import GRAD_NAMES, run_with_grads
    monkeypatch.setattr(tc, "STATE_GROUP", group)
    B, H = 2, 2
    xs, h0 = make_inputs(B, T, H, K, V, init=True, seed=9)
    if HAS_CUDA:
        xs, h0 = [x.cuda() for x in xs], h0.cuda()

    def op(q, k, v, p, g, beta, h):
        return comba(q, k, v, p, g, beta, None, h, True, variant=variant, reverse=reverse, backend="triton")

    results, kept_bytes = [], []
    for recompute in (False, True):
        monkeypatch.setattr(tc, "RECOMPUTE_BUFFERS", recompute)
        kept = {}
        with torch.autograd.graph.saved_tensors_hooks(
                lambda t, kept=kept: kept.setdefault(t.untyped_storage().data_ptr(), t), lambda t: t):
            results.append(run_with_grads(op, xs, h0))
        kept_bytes.append(sum(t.untyped_storage().nbytes() for t in kept.values()))
    (o1, ht1, g1), (o2, ht2, g2) = results
    assert torch.equal(o1, o2) and torch.equal(ht1, ht2)
    for name, a, b in zip(GRAD_NAMES, g1, g2):
        assert torch.equal(a, b), name
    buffers = sum(4 * math.prod(s) for s in tc.work_buffer_shapes(B, T, H, K, V).values())
    assert kept_bytes[0] - kept_bytes[1] == buffers - h0.numel() * 4


def _half_buffer_errors(monkeypatch, xs, h0, variant, reverse):
    """{half: (relative errors against float64, bytes autograd keeps)} with the work buffers in float32 (False)
    and in the inputs' dtype (True, COMBA_HALF_BUFFERS=1)."""
    runs = _buffer_mode_errors(monkeypatch, xs, h0, variant, reverse,
                               [dict(HALF_BUFFERS="0"), dict(HALF_BUFFERS="1")])
    return dict(zip((False, True), runs))


def _buffer_mode_errors(monkeypatch, xs, h0, variant, reverse, modes):
    """[(relative errors against float64, bytes autograd keeps)], one per mode (triton_chunk attributes to set).
    The float64 reference runs once."""
    import comba_vision.ops.triton_chunk as tc
    from tests.ops.helpers import GRAD_NAMES, run_with_grads

    def ours(q, k, v, p, g, beta, h):
        return comba(q, k, v, p, g, beta, None, h, True, variant=variant, reverse=reverse, backend="triton")

    def ref(q, k, v, p, g, beta, h):
        return comba_recurrent_reference(q, k, v, p, g, beta, None, h, True, variant=variant, reverse=reverse)

    names = ["o", "ht", *GRAD_NAMES]
    refs = run_with_grads(ref, [x.detach().cpu().double() for x in xs], h0.detach().cpu().double())
    refs = [*refs[:2], *refs[2]]
    out = []
    for mode in modes:
        for name, value in mode.items():
            monkeypatch.setattr(tc, name, value)
        kept = {}

        def pack(t, kept=kept):  # every tensor our op saves is alive at once: storages do not repeat
            kept.setdefault(t.untyped_storage().data_ptr(), t)
            return t
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            o, ht, grads = run_with_grads(ours, xs, h0)
        errs = {n: rel_err(a, r) for n, a, r in zip(names, [o, ht, *grads], refs)}
        out.append((errs, sum(t.untyped_storage().nbytes() for t in kept.values())))
    return out


def _check_half_buffers(out, shape, dtype):
    import math

    import comba_vision.ops.triton_chunk as tc
    (e32, kept32), (e16, kept16) = out[False], out[True]
    # the work buffers (and nothing else) kept at 2 bytes an element instead of 4; the reference's own saved
    # tensors are counted in both runs alike
    assert kept32 - kept16 == sum(2 * math.prod(s) for s in tc.work_buffer_shapes(*shape).values())
    assert max(e16.values()) <= BOUND[dtype], e16
    assert max(e16.values()) <= 3 * max(e32.values()), (e16, e32)


@pytest.mark.skipif(not INTERPRETING, reason="interpreter tests run where there is no GPU")
@pytest.mark.parametrize("T, K, V, variant, reverse, group", [
    (130, 32, 16, "iplr", True, 2), (70, 64, 32, "splr", False, 0)])
def test_half_work_buffers(monkeypatch, T, K, V, variant, reverse, group):
    """COMBA_HALF_BUFFERS=1 with fp16 inputs (the interpreter computes fp16 exactly, bf16 products not): M, W, U,
    h are kept in fp16, exactly halving their bytes among what autograd keeps, and output and every gradient
    stay within the fp16 bound of the float64 reference and within three times the float32 buffers' error.
    Cases: the grouped state walk (group 2) with a short last chunk alone in its group, reverse; head size 64
    (the one-kernel gradient with the precomputed products), forward."""
    import comba_vision.ops.triton_chunk as tc
    monkeypatch.setattr(tc, "STATE_GROUP", group)
    xs, h0 = make_inputs(2, T, 2, K, V, dtype=torch.float16, init=True, seed=T + K)
    _check_half_buffers(_half_buffer_errors(monkeypatch, xs, h0, variant, reverse), (2, T, 2, K, V), torch.float16)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs CUDA")
@pytest.mark.parametrize("T, K, V, reverse, G", [(197, 32, 64, False, 0), (150, 64, 64, True, 0),
                                                 (300, 128, 128, False, 0), (1025, 64, 64, True, 0)])
def test_gpu_bf16_half_work_buffers(monkeypatch, T, K, V, reverse, G):
    """COMBA_HALF_BUFFERS=1 with bf16 inputs on the GPU: as test_half_work_buffers, at the bf16 bound (one walk;
    the grouped walk keeps float32 buffers on a GPU: test_gpu_grouped_walk_keeps_float32_buffers)."""
    import comba_vision.ops.triton_chunk as tc
    monkeypatch.setattr(tc, "STATE_GROUP", G)  # 0: one walk
    xs, h0 = make_inputs(2, T, 2, K, V, dtype=torch.bfloat16, init=True, seed=T + K, device="cuda")
    _check_half_buffers(_half_buffer_errors(monkeypatch, xs, h0, "splr", reverse), (2, T, 2, K, V), torch.bfloat16)


def _check_half_bwd_buffers(monkeypatch, xs, h0, reverse, dtype):
    """The backward's buffers in float32 and then half (the work buffers half in both runs): errors against
    float64."""
    (e32, _), (e16, _) = _buffer_mode_errors(monkeypatch, xs, h0, "splr", reverse, [
        dict(HALF_BUFFERS="1", HALF_BWD_BUFFERS=False), dict(HALF_BUFFERS="1", HALF_BWD_BUFFERS=True)])
    assert e16 != e32  # the switch took effect: the rounded buffers change the numbers
    assert max(e16.values()) <= BOUND[dtype], e16
    assert max(e16.values()) <= 3 * max(e32.values()), (e16, e32)


@pytest.mark.skipif(not INTERPRETING, reason="interpreter tests run where there is no GPU")
@pytest.mark.parametrize("T, K, V, reverse", [(70, 64, 32, False), (130, 32, 16, True)])
def test_half_bwd_buffers(monkeypatch, T, K, V, reverse):
    """COMBA_HALF_BWD_BUFFERS=1 with fp16 inputs: the backward's dh and PH (and dAf, dAo where the split gradient
    kernels run: head size 128, the GPU test's last case) in fp16 keep output and gradients within the fp16 bound of
    the float64 reference and within three times the error with them in float32 (the work buffers half in both
    runs)."""
    xs, h0 = make_inputs(2, T, 2, K, V, dtype=torch.float16, init=True, seed=T + K + 1)
    _check_half_bwd_buffers(monkeypatch, xs, h0, reverse, torch.float16)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs CUDA")
@pytest.mark.parametrize("T, K, V, reverse", [(197, 32, 64, False), (150, 64, 64, True), (300, 128, 128, False)])
def test_gpu_bf16_half_bwd_buffers(monkeypatch, T, K, V, reverse):
    """COMBA_HALF_BWD_BUFFERS=1 with bf16 inputs on the GPU: as test_half_bwd_buffers, at the bf16 bound."""
    xs, h0 = make_inputs(2, T, 2, K, V, dtype=torch.bfloat16, init=True, seed=T + K + 1, device="cuda")
    _check_half_bwd_buffers(monkeypatch, xs, h0, reverse, torch.bfloat16)


def test_half_buffer_modes(monkeypatch):
    """COMBA_HALF_BUFFERS picks the work buffers' dtypes (M, W, U, h): "1" (the default) all four in a bf16 / fp16
    input dtype, float32 for float32 inputs; "0" float32 always; anything else is refused by name."""
    import comba_vision.ops.triton_chunk as tc
    f32, bf16, f16 = torch.float32, torch.bfloat16, torch.float16
    for mode, dtype, want in [("0", bf16, f32), ("0", f16, f32), ("1", f16, f16), ("1", bf16, bf16), ("1", f32, f32)]:
        monkeypatch.setattr(tc, "HALF_BUFFERS", mode)
        assert tc.buffer_dtypes(dtype) == (want,) * 4, (mode, dtype)
    assert tc.buffer_dtypes(bf16, grouped=True) == (f32,) * 4  # the grouped state walk on a GPU
    monkeypatch.setattr(tc, "HALF_BUFFERS", "w")
    with pytest.raises(ValueError, match="COMBA_HALF_BUFFERS must be 0 or 1"):
        tc.buffer_dtypes(bf16)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs CUDA")
def test_gpu_grouped_walk_keeps_float32_buffers(monkeypatch):
    """On a GPU the work buffers stay float32 where the state walk is grouped (Triton 3.6 miscompiles the grouped
    walk on half buffers on the H200: NaN or an illegal memory access), half elsewhere; the operator there matches
    the float64 reference."""
    import comba_vision.ops.triton_chunk as tc
    from tests.ops.helpers import compare_to_reference
    monkeypatch.setattr(tc, "HALF_BUFFERS", "1")
    monkeypatch.setattr(tc, "STATE_GROUP", "auto")
    monkeypatch.setattr(tc, "TRANSITION_WALK", "0")  # else the transition walk replaces the grouped one
    bufs = tc.empty_work_buffers(1, 4097, 2, 64, 64, 2, torch.bfloat16, "cuda")  # 4 rows, 65 chunks: grouped
    assert tc._state_group(65, 4, 64, 64, torch.device("cuda")) > 0
    assert all(b.dtype == torch.float32 for b in bufs)
    bufs = tc.empty_work_buffers(128, 197, 3, 64, 64, 2, torch.bfloat16, "cuda")  # one walk
    assert all(b.dtype == torch.bfloat16 for b in bufs)
    xs, h0 = make_inputs(1, 4097, 2, 64, 64, dtype=torch.bfloat16, init=True, seed=5, device="cuda")
    errs = compare_to_reference(xs, h0, variant="splr", reverse=True, backend="triton")
    assert max(errs.values()) <= BOUND[torch.bfloat16], errs


@pytest.mark.skipif(not (INTERPRETING or HAS_CUDA), reason="needs CUDA or TRITON_INTERPRET=1")
def test_half_work_buffers_fake_dtypes(monkeypatch):
    """With COMBA_HALF_BUFFERS=1 the custom ops' fake outputs carry the buffers' half dtype, as the real ones
    (torch.library.opcheck's fake-tensor check: what torch.compile relies on; float32 inputs, which keep float32
    buffers, are checked in test_bidirectional.py)."""
    import comba_vision.ops.triton_chunk as tc
    from comba_vision.ops.function import chunk_buffers, chunk_bwd, chunk_fwd
    monkeypatch.setattr(tc, "HALF_BUFFERS", "1")
    checks = ("test_schema", "test_faketensor")
    xs, _ = make_inputs(1, 17, 2, 16, 16, dtype=torch.float16, seed=2, device="cuda" if HAS_CUDA else "cpu")
    fwd_args = (*xs, 0.25, None, False, False, tc.BOTH)
    assert set(torch.library.opcheck(chunk_fwd, fwd_args, test_utils=checks).values()) == {"SUCCESS"}
    o, _, *bufs = chunk_fwd(*fwd_args)
    assert {b.dtype for b in bufs} == {torch.float16}
    assert set(torch.library.opcheck(chunk_buffers, (*xs, None, False, tc.BOTH), test_utils=checks).values()) \
        == {"SUCCESS"}
    bwd_args = (*xs, *bufs, torch.randn_like(o), None, 0.25, False, False, tc.BOTH)
    assert set(torch.library.opcheck(chunk_bwd, bwd_args, test_utils=checks).values()) == {"SUCCESS"}


@pytest.mark.skipif(not (INTERPRETING or HAS_CUDA), reason="needs CUDA or TRITON_INTERPRET=1")
def test_no_read_of_unwritten_memory(monkeypatch):
    """Every float tensor the operator allocates (torch.empty / empty_like) filled with NaN first: output and
    gradients stay finite, both directions and the reverse scan alone, with a short last chunk, in one walk and
    grouped. On the GPU (bf16) in one process over the shapes of the session-16 fault (a kernel reading memory no
    kernel wrote, or built into garbage, shows as NaN or an illegal memory access); under the interpreter (fp16)
    at small shapes, the grouped walk forced."""
    import comba_vision.ops.triton_chunk as tc
    from comba_vision import bench
    if HAS_CUDA:
        dtype, device = torch.bfloat16, "cuda"
        # (the long "auto" shapes take the transition walk; "grouped": the grouped walk there)
        cases = [((4, 197, 3, 64, 64), "auto"), ((2, 1025, 3, 64, 64), "auto"), ((1, 4097, 2, 64, 64), "auto"),
                 ((1, 4097, 3, 32, 64), "auto"), ((1, 4097, 2, 64, 64), "grouped"), ((1, 4097, 3, 32, 64), "grouped")]
    else:
        dtype, device = torch.float16, "cpu"
        cases = [((1, 70, 1, 32, 16), "auto"), ((1, 150, 1, 16, 16), 2), ((1, 150, 1, 32, 16), "transition"),
                 ((1, 200, 1, 32, 16), "transition-grouped")]
    settings = {"auto": ("auto", "auto", "auto"), "grouped": ("auto", "0", "auto"), 2: (2, "auto", "auto"),
                "transition": ("auto", "1", "auto"), "transition-grouped": ("auto", "1", 2)}
    def nan_filled(alloc):
        def f(*a, **k):
            t = alloc(*a, **k)
            return t.fill_(float("nan")) if t.is_floating_point() else t
        return f
    nan_empty, nan_empty_like = nan_filled(torch.empty), nan_filled(torch.empty_like)
    for shape, group in cases:
        xs = [x.detach().requires_grad_() for x in bench.make_op_inputs(shape, dtype, device)]
        for run in (lambda xs: comba_bidirectional(*xs, merge="stack"),
                    lambda xs: comba(*xs, reverse=True, backend="triton")[0]):
            for x in xs:
                x.grad = None
            for name, value in zip(("STATE_GROUP", "TRANSITION_WALK", "TRANSITION_GROUP"), settings[group]):
                monkeypatch.setattr(tc, name, value)
            monkeypatch.setattr(torch, "empty", nan_empty)
            monkeypatch.setattr(torch, "empty_like", nan_empty_like)
            o = run(xs)
            o.backward(torch.ones_like(o))
            if HAS_CUDA:
                torch.cuda.synchronize()
            monkeypatch.undo()
            assert o.isfinite().all() and all(x.grad.isfinite().all() for x in xs), shape


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs CUDA")
def test_gpu_grouped_fake_dtypes(monkeypatch):
    """At a shape whose state walk is grouped on the GPU the custom op's fake outputs carry float32 buffers, as
    the real ones (opcheck's fake-tensor check), with bf16 inputs."""
    import comba_vision.ops.triton_chunk as tc
    from comba_vision.ops.function import chunk_fwd
    for name, value in (("HALF_BUFFERS", "1"), ("STATE_GROUP", "auto"), ("TRANSITION_WALK", "0")):
        monkeypatch.setattr(tc, name, value)
    xs, _ = make_inputs(1, 2100, 1, 16, 16, dtype=torch.bfloat16, seed=3, device="cuda")
    assert tc._state_group(33, 2, 16, 16, torch.device("cuda")) > 0  # both directions: 2 rows, 33 chunks
    fwd_args = (*xs, 0.25, None, False, False, tc.BOTH)
    checks = ("test_schema", "test_faketensor")
    assert set(torch.library.opcheck(chunk_fwd, fwd_args, test_utils=checks).values()) == {"SUCCESS"}
    assert {b.dtype for b in chunk_fwd(*fwd_args)[2:]} == {torch.float32}


@pytest.mark.skipif(not (INTERPRETING or HAS_CUDA), reason="needs CUDA or TRITON_INTERPRET=1")
@pytest.mark.parametrize("T, K, V, variant, reverse, row_sub", [
    (17, 16, 16, "splr", False, False), (196, 32, 64, "splr", True, False), (90, 32, 48, "iplr", False, True),
    (160, 24, 32, "iplr", True, False), (150, 64, 48, "splr", False, False)])
def test_short_last_chunk_tile(monkeypatch, T, K, V, variant, reverse, row_sub):
    """A last chunk of at most 32 positions on its own 16- or 32-row tile (COMBA_TAIL_TILE, the default):
    the tile size is the one intended, and output, state and every gradient match the float64 reference,
    as they do on the whole-tile path (one short chunk alone, and after whole ones; the blocked and the
    row-substitution prepare kernels)."""
    import comba_vision.ops.triton_chunk as tc
    monkeypatch.setattr(tc, "BLOCKED_INVERSE", not row_sub)
    monkeypatch.setattr(tc, "SPLIT_TAIL", False)
    monkeypatch.setattr(tc, "SPLIT_BWD_MIN_BK", 128)  # head size 64 on the one-kernel gradient (the default)
    tail = T - (T - 1) // tc.BT * tc.BT  # positions of the last chunk (COMBA_CHUNK_SIZE: 64 or 32)
    assert tc._tail_rows(T, max(16, 1 << (K - 1).bit_length())) == (16 if tail <= 16 else 32)
    assert tc._tail_rows(T, 128) == tc.BT  # the split gradient and K-halves state kernels (from 128) take whole chunks
    xs, h0 = make_inputs(2, T, 2, K, V, init=True, seed=9)
    if HAS_CUDA:
        xs, h0 = [x.cuda() for x in xs], h0.cuda()
    errs = compare_to_reference(xs, h0, variant=variant, reverse=reverse, backend="triton")
    assert max(errs.values()) <= (1e-4 if INTERPRETING else 1e-3), errs
    monkeypatch.setattr(tc, "TAIL_TILE", False)
    assert tc._tail_rows(T, 32) == tc.BT
    whole = compare_to_reference(xs, h0, variant=variant, reverse=reverse, backend="triton")
    assert max(whole.values()) <= (1e-4 if INTERPRETING else 1e-3), whole


def test_tail_tile_only_for_few_chunks(monkeypatch):
    """COMBA_TAIL_TILE_MAX_CHUNKS: the short last chunk takes its own tile up to that many chunks (the image lengths
    197 and 1025 at the default 32), a whole tile in the other chunks' launches beyond (4097, 16385)."""
    import comba_vision.ops.triton_chunk as tc
    monkeypatch.setattr(tc, "BT", 64)
    monkeypatch.setattr(tc, "SPLIT_TAIL", False)
    monkeypatch.setattr(tc, "SPLIT_BWD_MIN_BK", 128)
    assert [tc._tail_rows(T, 64) for T in (197, 1025, 2000, 2049, 4097, 16385)] == [16, 16, 16, 64, 64, 64]
    monkeypatch.setattr(tc, "TAIL_TILE_MAX_CHUNKS", 3)
    assert [tc._tail_rows(T, 32) for T in (129, 150, 197)] == [16, 32, 64]


@pytest.mark.skipif(not (INTERPRETING or HAS_CUDA), reason="needs CUDA or TRITON_INTERPRET=1")
@pytest.mark.parametrize("T, V, variant, reverse, walk", [
    (133, 64, "splr", False, "plain"), (150, 48, "iplr", True, "plain"), (17, 32, "splr", True, "plain"),
    (197, 64, "iplr", False, "transition"), (197, 64, "splr", True, "recompute")])
def test_split_tail_tile(monkeypatch, T, V, variant, reverse, walk):
    """COMBA_SPLIT_TAIL: at head size 64 on the split gradient kernels (COMBA_SPLIT_BWD_MIN_BK=64, pinned here; the
    default since session 26 is the one kernel there), which take whole chunks only, a short last
    chunk on its own 16- or 32-row tile anyway, its gradient through the one-kernel _bwd_grads on that tile. Output,
    final state and every gradient (initial state included) against the float64 step recurrence: after whole chunks
    (5 tokens: T = 133; 22 tokens on a 32-row tile, V = 48 below its block: T = 150) and alone (T = 17: no split
    kernel launched); with the transition walk (its maps from the blocked prepare and _bwd_dv_local) and with the
    work buffers rebuilt in the backward (COMBA_RECOMPUTE_BUFFERS); the launches' tiles checked. Then both
    directions in one launch against the float64 chunk path."""
    import comba_vision.ops.triton_chunk as tc
    from comba_vision.bench import op_errors
    monkeypatch.setattr(tc, "SPLIT_TAIL", True)
    monkeypatch.setattr(tc, "SPLIT_BWD_MIN_BK", 64)  # the split gradient kernels at head size 64 (before session 26)
    if walk == "transition":
        monkeypatch.setattr(tc, "TRANSITION_WALK", "1")
        monkeypatch.setattr(tc, "TRANSITION_FOLD", "1")
    monkeypatch.setattr(tc, "RECOMPUTE_BUFFERS", walk == "recompute")
    tail = tc._tail_rows(T, 64)
    if tail == tc.BT:
        pytest.skip("the last chunk fills its tile at this chunk size (COMBA_CHUNK_SIZE)")
    assert tail == (16 if T - (T - 1) // tc.BT * tc.BT <= 16 else 32) and tc._tail_rows(T, 128) == tc.BT
    launched = spy_launches(monkeypatch, tc, "BT")
    xs, h0 = make_inputs(1, T, 2, 64, V, init=True, seed=T)
    if HAS_CUDA:
        xs, h0 = [x.cuda() for x in xs], h0.cuda()
    errs = compare_to_reference(xs, h0, variant=variant, reverse=reverse, backend="triton")
    assert max(errs.values()) <= (1e-4 if INTERPRETING else 1e-3), errs
    whole = T > tc.BT
    assert ("_bwd_grads", tail) in launched and ("_bwd_grads", tc.BT) not in launched
    assert (("_bwd_grads_cc", tc.BT) in launched) == whole and (("_bwd_grads_k", tc.BT) in launched) == whole
    assert ("_fwd_prepare", tail) in launched
    assert (("_affine_scan", None) in launched) == (walk == "transition")
    monkeypatch.setenv("COMBA_BACKEND", "triton")
    dtype = torch.bfloat16 if HAS_CUDA else torch.float16
    both = op_errors((1, T, 2, 64, V), dtype, "cuda" if HAS_CUDA else "cpu", both=True, seed=T + 1)
    assert max(both.values()) <= BOUND[dtype], both


@pytest.mark.skipif(not (INTERPRETING or HAS_CUDA), reason="needs CUDA or TRITON_INTERPRET=1")
@pytest.mark.parametrize("T, K, V, variant, reverse, G, bv", [
    (197, 32, 64, "splr", False, 2, None), (280, 16, 32, "iplr", True, 2, None), (330, 32, 48, "splr", True, 3, 16),
    (330, 16, 16, "iplr", False, 4, None), (256, 32, 40, "iplr", True, 3, 16), (300, 48, 40, "splr", False, 2, 16)])
def test_grouped_state_walk(monkeypatch, T, K, V, variant, reverse, G, bv):
    """The state kernels' grouped walk (COMBA_STATE_GROUP): groups of G chunks summarised from zero with
    their transition matrix, chained, then walked again from their true start. With an initial and a final
    state, both directions and variants; a short last chunk alone in its group (T = 280, G = 2) or after
    whole ones (T = 330, G = 3), a last group shorter than G (T = 330, G = 4), no short tile (T = 256: groups
    of 3 and 1; T = 300: a last chunk of 44 on a whole tile); a head size below its tile (K = 48); and (bv)
    V blocks of 16: several of them, the last one partial (V = 40), and the transition matrix over two
    or three blocks of identity columns (K = 32, 48). The grouped launches are checked to have run."""
    import comba_vision.ops.triton_chunk as tc
    monkeypatch.setattr(tc, "STATE_GROUP", G)
    if bv is not None:
        monkeypatch.setattr(tc, "_state_block_v", lambda BH, V, BV, device: bv)
    launched = spy_launches(monkeypatch, tc, "PHASE")
    xs, h0 = make_inputs(1, T, 2, K, V, init=True, seed=11)
    if HAS_CUDA:
        xs, h0 = [x.cuda() for x in xs], h0.cuda()
    errs = compare_to_reference(xs, h0, variant=variant, reverse=reverse, backend="triton")
    assert max(errs.values()) <= (1e-4 if INTERPRETING else 1e-3), errs
    for name in ("_fwd_state", "_bwd_state"):
        assert [(name, 1), (name, 2)] == [x for x in launched if x[0] == name]
    assert [x[0] for x in launched].count("_state_carry") == 2


def test_state_group_choice(monkeypatch):
    """Grouped only where the walk is long and B*H leaves the GPU short of programs, never on the CPU or from
    head size 128 by default; a forced size applies wherever the walk has more chunks than it."""
    import comba_vision.ops.triton_chunk as tc
    cpu = torch.device("cpu")
    monkeypatch.setattr(tc, "STATE_HALVES_MIN_BK", 128)
    monkeypatch.setattr(tc, "STATE_GROUP", "auto")
    assert tc._state_group(256, 12, 64, 32, cpu) == 0
    monkeypatch.setattr(tc, "STATE_GROUP", 8)
    assert tc._state_group(256, 12, 64, 32, cpu) == 8
    assert tc._state_group(8, 12, 64, 32, cpu) == 0
    assert tc._state_group(256, 12, 128, 128, cpu) == 0
    monkeypatch.setattr(tc, "STATE_GROUP", 0)
    assert tc._state_group(256, 12, 64, 32, cpu) == 0
    if HAS_CUDA:
        monkeypatch.setattr(tc, "STATE_GROUP", "auto")
        dev = torch.device("cuda")
        sms = torch.cuda.get_device_properties(dev).multi_processor_count
        assert tc._state_group(256, 1, 64, 32, dev) == 8
        assert tc._state_group(64, 1, 64, 32, dev) == 4
        assert tc._state_group(16, 1, 64, 32, dev) == 0  # too short a walk
        assert tc._state_group(256, sms, 64, 32, dev) == 0  # enough programs already


@pytest.mark.skipif(not (INTERPRETING or HAS_CUDA), reason="needs CUDA or TRITON_INTERPRET=1")
@pytest.mark.parametrize("fused", [True, False])
def test_output_made_by_the_state_walk(monkeypatch, fused):
    """COMBA_FUSED_OUTPUT (default on below head size 128): the forward state kernel writes the output and
    _fwd_output is not launched; off, _fwd_output makes it. Both against the float64 reference, with a short
    last chunk (T = 70) and the grouped walk (the output is written by its storing walk)."""
    import comba_vision.ops.triton_chunk as tc
    monkeypatch.setattr(tc, "FUSED_OUTPUT", fused)
    monkeypatch.setattr(tc, "STATE_GROUP", 1)
    launched = spy_launches(monkeypatch, tc, "OUTPUT")
    xs, h0 = make_inputs(1, 70, 2, 16, 32, init=True, seed=12)
    if HAS_CUDA:
        xs, h0 = [x.cuda() for x in xs], h0.cuda()
    errs = compare_to_reference(xs, h0, variant="splr", reverse=True, backend="triton")
    assert max(errs.values()) <= (1e-4 if INTERPRETING else 1e-3), errs
    names = [n for n, _ in launched]
    assert ("_fwd_output" in names) != fused
    assert {out for n, out in launched if n == "_fwd_state"} == {fused}


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs CUDA")
@pytest.mark.parametrize("fused", [True, False])
def test_gpu_bf16_output_launch_at_1025_tokens(monkeypatch, fused):
    """bf16, head size 64, both directions at (32, 1025, 3, 64) (17 chunks, a 1-row last chunk, one walk): output
    and gradients within the bf16 bound of float64 (bench.op_errors, what `benchmark.py kernels` reports) with the
    output from the state walk and from _fwd_output. Session 17's kernel benchmark hit an illegal memory access at
    this shape with COMBA_FUSED_OUTPUT=0 while the head-64 state walks ran on 1 pipeline stage; on 2 stages (session
    18) it passed both ways: this test is its regression check."""
    import comba_vision.ops.triton_chunk as tc
    from comba_vision.bench import op_errors
    monkeypatch.setattr(tc, "FUSED_OUTPUT", fused)
    errs = op_errors((32, 1025, 3, 64, 64), torch.bfloat16, "cuda", seed=17)
    assert max(errs.values()) <= BOUND[torch.bfloat16], errs


def test_kernel_config_override_parsing(monkeypatch):
    """COMBA_KERNEL_CONFIG: name:BK:warps:stages with an optional V block; malformed entries are named."""
    import comba_vision.ops.triton_chunk as tc
    monkeypatch.setenv("COMBA_KERNEL_CONFIG", "_bwd_grads:32:4:1:32,_fwd_state:64:8:2")
    assert tc._env_kernel_configs() == {("_bwd_grads", 32): dict(num_warps=4, num_stages=1, BV=32),
                                        ("_fwd_state", 64): dict(num_warps=8, num_stages=2)}
    for bad in ("_bwd_grads:32:4", "_bwd_grads:32:4:1:48", "_bwd_grads:32:4:1:32:1", "_bwd_grads:x:4:1"):
        monkeypatch.setenv("COMBA_KERNEL_CONFIG", bad)
        with pytest.raises(ValueError, match=f"got '{bad}'"):
            tc._env_kernel_configs()


def test_kernel_config_block_v_applies_where_allowed(monkeypatch):
    """A configured V block replaces the launch's (capped at V's padded size), except for a kernel that must see all
    of V (fixed_bv)."""
    import types

    import comba_vision.ops.triton_chunk as tc
    monkeypatch.setattr(tc, "_interpreting", lambda: False)
    monkeypatch.setenv("COMBA_KERNEL_CONFIG", "_probe:32:2:1:16")
    seen = []

    class Probe:  # a kernel launcher: Probe()[grid](*args, **meta)
        fn = types.SimpleNamespace(__name__="_probe")

        def __getitem__(self, grid):
            return lambda *args, **meta: seen.append((grid, meta["BV"], meta["num_warps"]))

    meta = dict(K=32, V=64, BK=32, BV=64, PREC="tf32")
    assert tc._launch(Probe(), (4, 2), (), meta) == 16
    assert tc._launch(Probe(), (4, 2), (), meta, fixed_bv=True) == 64
    assert seen == [((4, 2), 16, 2), ((4, 2), 64, 2)]
    monkeypatch.setenv("COMBA_KERNEL_CONFIG", "_probe:32:2:1:64")  # never wider than V's padded size
    assert tc._launch(Probe(), (4, 2), (), dict(meta, V=24, BV=16)) == 32


def test_bf16_dot_choice(monkeypatch):
    """bf16 products only for bf16 inputs up to head size 64, on a GPU, and only while COMBA_BF16_DOTS is on."""
    import comba_vision.ops.triton_chunk as tc
    monkeypatch.setattr(tc, "_interpreting", lambda: False)
    monkeypatch.setattr(tc, "BF16_DOTS", True)
    meta = dict(BK=32, PREC="tf32", BT=64)
    assert tc._dot_meta(meta, torch.bfloat16) == dict(BK=32, PREC="bf16", BT=64)
    assert tc._dot_meta(dict(meta, BK=64), torch.bfloat16)["PREC"] == "bf16"
    assert tc._dot_meta(dict(meta, BK=128), torch.bfloat16)["PREC"] == "tf32"
    assert tc._dot_meta(meta, torch.float16)["PREC"] == "tf32"
    assert tc._dot_meta(dict(meta, PREC="tf32x3"), torch.float32)["PREC"] == "tf32x3"
    monkeypatch.setattr(tc, "BF16_DOTS", False)
    assert tc._dot_meta(meta, torch.bfloat16)["PREC"] == "tf32"
    monkeypatch.setattr(tc, "BF16_DOTS", True)
    monkeypatch.setattr(tc, "_interpreting", lambda: True)
    assert tc._dot_meta(meta, torch.bfloat16)["PREC"] == "tf32"


def test_one_kernel_gradient_options(monkeypatch):
    """_bwd_grads' launch options (_grads_one_meta): with the precomputed products and bf16 products available
    (_dot_meta's "bf16"), the ordered form on them with TF32 kept for the two products of a transposed C x C tile
    (PREC_T); otherwise the inputs' TF32 (three-pass for float32) in the previous order (ORDERED_GRADS "auto": Triton
    3.6 builds the previous order wrong on bf16, and the ordered one is slower on TF32), or ordered where
    ORDERED_GRADS is "1"; nothing ordered without the precomputed products."""
    import comba_vision.ops.triton_chunk as tc
    meta, low = dict(PREC="tf32", BK=32), dict(PREC="bf16", BK=32)
    f32 = dict(PREC="tf32x3", BK=32)

    def opts(m, lo, pre):
        got = tc._grads_one_meta(m, lo, pre)
        return got["ORDERED"], got["PREC"], got["PREC_T"], got["PRE"]
    assert tc.ORDERED_GRADS == "auto" and tc.BF16_GRADS_ONE  # the defaults
    assert opts(meta, low, True) == (True, "bf16", "tf32", True)
    assert opts(meta, low, False) == (False, "tf32", "tf32", False)
    assert opts(f32, f32, True) == (False, "tf32x3", "tf32x3", True)
    assert opts(meta, meta, True) == (False, "tf32", "tf32", True)  # bf16 inputs where _dot_meta gives TF32
    monkeypatch.setattr(tc, "BF16_GRADS_ONE", False)
    assert opts(meta, low, True) == (False, "tf32", "tf32", True)
    monkeypatch.setattr(tc, "ORDERED_GRADS", "1")
    assert opts(meta, low, True) == (True, "tf32", "tf32", True)
    assert opts(f32, f32, True) == (True, "tf32x3", "tf32x3", True)
    assert opts(meta, low, False) == (False, "tf32", "tf32", False)
    monkeypatch.setattr(tc, "BF16_GRADS_ONE", True)
    assert opts(meta, low, True) == (True, "bf16", "tf32", True)
    monkeypatch.setattr(tc, "ORDERED_GRADS", "0")
    assert opts(meta, low, True) == (False, "tf32", "tf32", True)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs CUDA")
@pytest.mark.parametrize("T, K, V, reverse, G", [(197, 32, 64, False, 0), (150, 64, 64, True, 0),
                                                 (300, 128, 128, False, 0), (600, 32, 64, True, 3)])
def test_gpu_bf16_dots(monkeypatch, T, K, V, reverse, G):
    """bf16 inputs: the prepare, state and local-dU kernels and, with BF16_GRADS_ONE (the default), the one-kernel
    gradient of head sizes 32 and 64 (the split kernels of head 64 with COMBA_SPLIT_BWD_MIN_BK=64) take bf16
    products up to head size 64 (larger heads TF32), within the bf16 bound of the float64 reference and at most
    twice TF32's error; G: the state kernels' grouped walk (its group summaries on bf16 products, the carry in
    three-pass TF32)."""
    import comba_vision.ops.triton_chunk as tc
    xs, h0 = make_inputs(2, T, 2, K, V, dtype=torch.bfloat16, init=True, seed=T + K, device="cuda")
    errs = {}
    for on in (False, True):
        monkeypatch.setattr(tc, "BF16_DOTS", on)
        monkeypatch.setattr(tc, "SPLIT_TAIL", False)  # COMBA_SPLIT_TAIL's last chunk takes TF32 (test_split_tail_tile)
        monkeypatch.setattr(tc, "STATE_GROUP", G or "auto")
        monkeypatch.setattr(tc, "BF16_GRADS", True)
        launched = spy_launches(monkeypatch, tc, "PREC")
        errs[on] = compare_to_reference(xs, h0, variant="splr", reverse=reverse, backend="triton")
        monkeypatch.undo()
        assert ("_state_carry" in {n for n, _ in launched}) == bool(G)
        low = {n for n, prec in launched if prec == "bf16"}
        expect = {"_fwd_prepare_blocked", "_fwd_prepare_blocked2", "_fwd_prepare", "_fwd_state", "_bwd_state",
                  "_bwd_dv_local", "_bwd_grads_cc", "_bwd_grads_k", "_bwd_grads"}
        assert low == (expect & {n for n, _ in launched} if on and K <= 64 else set()), launched
        assert max(errs[on].values()) <= BOUND[torch.bfloat16], errs[on]
    assert max(errs[True].values()) <= 2 * max(errs[False].values()), errs


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs CUDA")
@pytest.mark.parametrize("T, reverse", [(150, True), (1025, False)])
def test_gpu_bf16_grads(monkeypatch, T, reverse):
    """COMBA_BF16_GRADS (default "1"), head size 64: the split gradient kernels take bf16 products, within the bf16
    bound of the float64 reference and at most twice their TF32 error."""
    import comba_vision.ops.triton_chunk as tc
    xs, h0 = make_inputs(2, T, 2, 64, 64, dtype=torch.bfloat16, init=True, seed=T, device="cuda")
    errs = {}
    for on in (False, True):
        monkeypatch.setattr(tc, "SPLIT_TAIL", False)  # the split kernels for every chunk, whatever the environment
        monkeypatch.setattr(tc, "SPLIT_BWD_MIN_BK", 64)
        monkeypatch.setattr(tc, "BF16_GRADS", on)
        launched = spy_launches(monkeypatch, tc, "PREC")
        errs[on] = compare_to_reference(xs, h0, variant="splr", reverse=reverse, backend="triton")
        monkeypatch.undo()
        grads = {prec for n, prec in launched if n.startswith("_bwd_grads")}
        assert grads == ({"bf16"} if on else {"tf32"}), launched
        assert max(errs[on].values()) <= BOUND[torch.bfloat16], errs[on]
    assert max(errs[True].values()) <= 2 * max(errs[False].values()), errs


@pytest.mark.skipif(not (INTERPRETING or HAS_CUDA), reason="needs CUDA or TRITON_INTERPRET=1")
@pytest.mark.parametrize("T, K, V, variant, reverse, G, blocked, doubling", [
    (197, 32, 64, "splr", False, 0, True, True), (150, 64, 64, "iplr", True, 0, True, False),
    (130, 32, 16, "splr", True, 2, False, False), (70, 128, 32, "iplr", False, 0, True, True)])
def test_chunk_size_32_matches_reference(monkeypatch, T, K, V, variant, reverse, G, blocked, doubling):
    """COMBA_CHUNK_SIZE=32 (the trial chunk size, set here on the module): whole chunks of 32 positions, inverted in
    two 16-row blocks (_fwd_prepare_blocked2, either inverse of the diagonal blocks) or by row substitution, the
    last one on a 16-row tile at head size 32 (197 = 6 * 32 + 5) or on a whole one where it fills more than half of
    it (150 = 4 * 32 + 22, head size 64), the grouped walk over 5 chunks, the head-128 kernels; output, final state
    and every gradient against the float64 step recurrence, and the buffers at 32 positions."""
    import comba_vision.ops.triton_chunk as tc
    monkeypatch.setattr(tc, "BT", 32)
    monkeypatch.setattr(tc, "STATE_GROUP", G)
    monkeypatch.setattr(tc, "BLOCKED_INVERSE", blocked)
    monkeypatch.setattr(tc, "DOUBLING_INVERSE", doubling)
    launched = spy_launches(monkeypatch, tc, "BT")
    xs, h0 = make_inputs(1, T, 2, K, V, init=True, seed=T)
    if HAS_CUDA:
        xs, h0 = [x.cuda() for x in xs], h0.cuda()
    errs = compare_to_reference(xs, h0, variant=variant, reverse=reverse, backend="triton")
    assert max(errs.values()) <= (1e-4 if INTERPRETING else 1e-3), errs
    assert tc.work_buffer_shapes(1, T, 2, K, V)["M"] == (2, -(-T // 32), 32, 32)
    assert ("_fwd_prepare_blocked2" if blocked else "_fwd_prepare", 32) in launched
    assert ("_fwd_prepare_blocked", 32) not in launched
    assert {bt for _, bt in launched if bt is not None} <= {16, 32}


@pytest.mark.skipif(not (INTERPRETING or HAS_CUDA), reason="needs CUDA or TRITON_INTERPRET=1")
def test_chunk_size_32_both_directions(monkeypatch):
    """COMBA_CHUNK_SIZE=32 with both scan directions in the same launches (what the models run): output and the six
    gradients of both directions against the float64 chunk path (bench.op_errors), a short last chunk included; then
    merged by the operator's sum (merge "sum") against float64, with new float tensors NaN-filled, so that the
    summed output's zeroing by the 32-position prepare and the short chunk's (ZERO_IN_KERNELS, with ATOMIC_SUM) must
    cover every token."""
    import comba_vision.ops.triton_chunk as tc
    from comba_vision.bench import op_errors
    monkeypatch.setattr(tc, "BT", 32)
    monkeypatch.setenv("COMBA_BACKEND", "triton")
    launched = spy_launches(monkeypatch, tc, record=lambda n, a, m: (n, m["BT"], m.get("ZERO_O", False)))
    dtype = torch.bfloat16 if HAS_CUDA else torch.float16
    device = "cuda" if HAS_CUDA else "cpu"
    poison_allocations(monkeypatch)
    errs = op_errors((2, 101, 2, 32, 48), dtype, device, both=True, seed=3)
    assert max(errs.values()) <= BOUND[dtype], errs
    assert {("_fwd_prepare_blocked2", 32, False), ("_fwd_prepare", 16, False), ("_bwd_grads", 16, False)} <= set(
        launched)
    # merged by the operator's own sum: the output added into by both directions
    launched.clear()
    errs = op_errors((2, 101, 2, 32, 48), dtype, device, both=True, seed=4, merge="sum")
    assert max(errs.values()) <= BOUND[dtype], errs
    zero = tc.ZERO_IN_KERNELS and tc._atomic_sum(dtype)
    assert {("_fwd_prepare_blocked2", 32, zero), ("_fwd_prepare", 16, zero)} <= set(launched)


@pytest.mark.skipif(not (INTERPRETING or HAS_CUDA), reason="needs CUDA or TRITON_INTERPRET=1")
@pytest.mark.parametrize("T, K, V, variant, reverse, init, bv, G, fold, complete, order", [
    (197, 32, 64, "splr", False, True, None, 0, False, True, "1"),
    (130, 16, 32, "iplr", True, True, None, 2, True, True, "0"),
    (300, 48, 40, "splr", True, False, 16, 2, False, True, "1"),
    (64, 32, 16, "iplr", False, True, None, 0, True, True, "auto"),
    (150, 64, 64, "iplr", False, True, 32, 0, True, True, "1"),
    (330, 32, 48, "splr", False, True, 16, 4, False, False, "auto"),
    (197, 32, 64, "splr", True, True, None, 2, True, True, "0"),
    (140, 32, 96, "iplr", True, True, None, 0, True, True, "1")])
def test_transition_walk(monkeypatch, T, K, V, variant, reverse, init, bv, G, fold, complete, order):
    """COMBA_TRANSITION_WALK=1: each chunk's step as an affine map (_chunk_affine), the walk over the maps
    (_affine_scan), then u, the output, dU and the dc terms chunk-parallel (_fwd_output with COMPLETE_U,
    _bwd_complete). Output, final state and every gradient (initial state included) against the float64 step
    recurrence: a short last chunk on its own tile (T = 197, 130 below head size 64) or on a whole one (T = 300;
    T = 150 at head size 64 on a 32-row tile), whole chunks only (T = 64), a head size below its tile
    (K = 48), several V blocks in the walk, the last one partial (V = 40, bv = 16), and in the chunk-parallel kernels
    (V = 96: blocks of 64 and 32, summed into one dc slice by _bwd_complete). G > 0: the walk in groups of G
    chunks (COMBA_TRANSITION_GROUP: summaries, carry, storing walk), the last group shorter (T = 330, G = 4: groups
    of 4 and 2 chunks), the identity's columns over two blocks (K = 32 with bv = 16). fold (COMBA_TRANSITION_FOLD=1):
    the maps written by the blocked prepare (a short last chunk's still by _chunk_affine) and by _bwd_dv_local.
    complete (COMBA_COMPLETE_IN_GRADS, the default): dU and the K dh, <h0, dh> terms of dc completed by the gradient
    kernel instead of _bwd_complete, in both of its orders (order: COMBA_ORDERED_GRADS; several V blocks at V = 96;
    a short last chunk's tile at T = 197, 130; at V = 16 on CUDA _bwd_complete instead). The state kernels of the
    other walks are checked not to have run, and _chunk_affine's launches counted."""
    import comba_vision.ops.triton_chunk as tc
    monkeypatch.setattr(tc, "COMPLETE_IN_GRADS", complete)
    monkeypatch.setattr(tc, "ORDERED_GRADS", order)
    monkeypatch.setattr(tc, "TRANSITION_WALK", "1")
    monkeypatch.setattr(tc, "TRANSITION_FOLD", "1" if fold else "0")
    monkeypatch.setattr(tc, "TRANSITION_GROUP", G)
    if bv is not None:
        monkeypatch.setattr(tc, "_state_block_v", lambda BH, V, BV, device: bv)
    launched = spy_launches(monkeypatch, tc, record=lambda n, a, m: (n, m.get("PHASE"), m.get("COMPLETE"),
                                                                     m.get("ORDERED")))
    xs, h0 = make_inputs(1, T, 2, K, V, init=True, seed=T + K)
    if HAS_CUDA:
        xs, h0 = [x.cuda() for x in xs], h0.cuda()
    errs = compare_to_reference(xs, h0 if init else None, variant=variant, reverse=reverse, backend="triton")
    assert max(errs.values()) <= (1e-4 if INTERPRETING else 1e-3), errs
    phases = [1, 2, 1, 2] if G else [0, 0]
    assert [x[:2] for x in launched if x[0] == "_affine_scan"] == [("_affine_scan", ph) for ph in phases]
    names = [x[0] for x in launched]
    assert names.count("_state_carry") == (2 if G else 0)
    n_tail = 2 if tc._tail_rows(T, max(16, 1 << (K - 1).bit_length())) < tc.BT else 1  # launches a chunk kernel takes
    # folded: the forward's short last chunk from _chunk_affine; the backward's too on CUDA at V = 16 (_fold)
    bwd_folded = fold and tc._fold("bwd", V, xs[0].device, max(16, 1 << (K - 1).bit_length()))
    assert names.count("_chunk_affine") == (n_tail - 1 if fold else n_tail) + (0 if bwd_folded else n_tail)
    pre = tc.PRE_MIN_BK <= max(16, 1 << (K - 1).bit_length()) or max(16, 1 << (K - 1).bit_length()) in tc.PRE_BKS
    # COMPLETE_IN_GRADS: not on CUDA at V = 16 (Triton 3.6 builds it wrong there), where _bwd_complete runs
    done = complete and pre and not (V <= 16 and HAS_CUDA)
    assert tc._complete_in_grads(True, pre, False, V, xs[0].device) == done
    assert ("_bwd_complete" in names) == (not done) and "_fwd_output" in names
    assert {(x[2], x[3]) for x in launched if x[0] == "_bwd_grads"} == {(done, pre and order == "1")}
    assert not set(names) & {"_fwd_state", "_bwd_state"}


@pytest.mark.skipif(not (INTERPRETING or HAS_CUDA), reason="needs CUDA or TRITON_INTERPRET=1")
@pytest.mark.parametrize("recompute, fold, half_maps", [
    (False, False, True), (True, False, True), (False, True, False)])
def test_transition_walk_both_directions(monkeypatch, recompute, fold, half_maps):
    """The transition walk with both scan directions in the same launches (what the models run), with the work
    buffers kept or rebuilt in the backward (COMBA_RECOMPUTE_BUFFERS: _fwd_output completes u without an output),
    and with the maps from the blocked prepare and _bwd_dv_local (COMBA_TRANSITION_FOLD=1), the maps bf16 (the
    default, COMBA_HALF_MAPS) or float32: output and the six gradients of both directions against the float64 chunk
    path (bench.op_errors)."""
    import comba_vision.ops.triton_chunk as tc
    from comba_vision.bench import op_errors
    monkeypatch.setattr(tc, "HALF_MAPS", half_maps)
    monkeypatch.setattr(tc, "TRANSITION_WALK", "1")
    monkeypatch.setattr(tc, "TRANSITION_FOLD", "1" if fold else "0")
    monkeypatch.setattr(tc, "RECOMPUTE_BUFFERS", recompute)
    monkeypatch.setenv("COMBA_BACKEND", "triton")
    launched = spy_launches(monkeypatch, tc, "OUTPUT")
    dtype = torch.bfloat16 if HAS_CUDA else torch.float16
    errs = op_errors((2, 150, 2, 32, 48), dtype, "cuda" if HAS_CUDA else "cpu", both=True, seed=4)
    assert max(errs.values()) <= BOUND[dtype], errs
    assert ("_fwd_output", False) in launched if recompute else ("_fwd_output", False) not in launched
    names = [n for n, _ in launched]
    assert "_fwd_state" not in names and "_bwd_state" not in names
    # one scan forward and one backward (and one more forward to rebuild the buffers when recomputing); the maps of
    # each scan from _chunk_affine (T = 150: two launches, whole chunks and the short last one), or when folded from
    # the blocked prepare (the short chunk's still from _chunk_affine) and _bwd_dv_local
    scans = 3 if recompute else 2
    assert names.count("_affine_scan") == scans
    assert names.count("_chunk_affine") == (scans - 1 if fold else 2 * scans)


@pytest.mark.skipif(not (INTERPRETING or HAS_CUDA), reason="needs CUDA or TRITON_INTERPRET=1")
@pytest.mark.parametrize("T, K, V, variant, reverse, G, fold, decay, bv, recompute", [
    (330, 32, 48, "splr", False, 2, True, 0.3, None, False), (300, 64, 64, "iplr", True, 0, False, 0.3, None, False),
    (700, 32, 32, "splr", True, 4, False, 0.003, None, False), (197, 48, 40, "iplr", False, 2, True, 0.003, 16, True)])
def test_half_maps(monkeypatch, T, K, V, variant, reverse, G, fold, decay, bv, recompute):
    """COMBA_HALF_MAPS: the transition walk's maps in bf16 for half inputs, A holding K~^T W alone and the walk
    applying e^c_last from the gates. Output, final state and every gradient (initial state included) of one
    direction against the float64 step recurrence, then both directions in one launch against the float64 chunk
    path: the maps from the blocked prepare and _bwd_dv_local (fold) or _chunk_affine, in groups (G) or one walk,
    head sizes 32, 48 and 64, both variants, gates that decay a hundred times slower than the others' (decay) over
    up to 11 chunks, a short last chunk on a 16-row tile with V blocks of 16 (bv) and the buffers rebuilt in the
    backward (recompute). Under the interpreter the maps' bf16 cast truncates (Triton 3.8's interpreter does not round
    to nearest), which about doubles their rounding error against a GPU's."""
    import comba_vision.ops.triton_chunk as tc
    from comba_vision.bench import op_errors
    monkeypatch.setattr(tc, "TRANSITION_WALK", "1")
    monkeypatch.setattr(tc, "TRANSITION_FOLD", "1" if fold else "0")
    monkeypatch.setattr(tc, "TRANSITION_GROUP", G)
    monkeypatch.setattr(tc, "HALF_MAPS", True)
    monkeypatch.setattr(tc, "RECOMPUTE_BUFFERS", recompute)
    if bv is not None:
        monkeypatch.setattr(tc, "_state_block_v", lambda BH, V, BV, device: bv)
    launched = spy_launches(monkeypatch, tc, record=lambda name, args, meta: (name, args[0].dtype, args[1].dtype))
    dtype = torch.bfloat16 if HAS_CUDA else torch.float16
    xs, h0 = make_inputs(1, T, 2, K, V, dtype=dtype, init=True, seed=T + K, decay=decay)
    if decay != 0.3:  # the both-directions check below on the same slow gates
        monkeypatch.setattr("comba_vision.bench.make_op_inputs", lambda *a, **kw: [x.detach() for x in xs])
    if HAS_CUDA:
        xs, h0 = [x.cuda() for x in xs], h0.cuda()
    errs = compare_to_reference(xs, h0, variant=variant, reverse=reverse, backend="triton")
    assert max(errs.values()) <= BOUND[dtype], errs
    maps = {x[1:] for x in launched if x[0] == "_affine_scan"}
    assert maps == {(torch.bfloat16, torch.bfloat16)}
    monkeypatch.setenv("COMBA_BACKEND", "triton")
    both = op_errors((1, T, 2, K, V), dtype, "cuda" if HAS_CUDA else "cpu", both=True, seed=T)
    assert max(both.values()) <= BOUND[dtype], both
    # float32 inputs keep float32 maps whatever the switch
    assert tc._transition_maps(1, 2, K, V, "cpu", torch.float32)[0].dtype == torch.float32


@pytest.mark.skipif(not (INTERPRETING or HAS_CUDA), reason="needs CUDA or TRITON_INTERPRET=1")
@pytest.mark.parametrize("shape, variant", [((1, 150, 2, 64, 48), "splr"), ((2, 70, 2, 32, 64), "iplr"),
                                            ((1, 4100, 1, 32, 16), "splr")])
def test_atomic_direction_sum(monkeypatch, shape, variant):
    """COMBA_ATOMIC_SUM: both scan directions' gradients added atomically by the one-kernel _bwd_grads into one
    buffer per input instead of a stored pair summed afterwards, and their outputs by the output's launch. The same
    output and gradients as the pair's sum (both round the two parts to the dtype, then their sum once), within the
    bound of the float64 chunk path; every gradient launch carries SUM_DIRS, every output launch OUT_ADD; a short
    last chunk's own launch (T = 150, 70) and at 4100 tokens the
    transition walk on a GPU. The output's zero fill either inside the prepare launches (ZERO_IN_KERNELS, the
    default) or by a launch of its own, with every new float tensor filled with NaN, so that an element left
    unzeroed shows."""
    import comba_vision.ops.triton_chunk as tc
    from comba_vision.bench import make_op_inputs, op_errors
    dtype = torch.bfloat16 if HAS_CUDA else torch.float16
    device = "cuda" if HAS_CUDA else "cpu"
    if shape[1] > 1000 and not HAS_CUDA:
        pytest.skip("a long sequence: on the GPU only")
    xs = make_op_inputs(shape, dtype, device, seed=5)
    do = torch.randn(shape[:3] + shape[4:], generator=torch.Generator().manual_seed(6)).to(device, dtype)

    grads = {}
    for mode in ("pair", "fill", "prepare"):
        monkeypatch.setattr(tc, "ATOMIC_SUM", mode != "pair")
        monkeypatch.setattr(tc, "ZERO_IN_KERNELS", mode == "prepare")
        monkeypatch.setattr(tc, "SPLIT_BWD_MIN_BK", 128)  # the one-kernel gradient, whatever the environment
        monkeypatch.setattr(tc, "SHARED_DO", True)  # the operator sums the outputs (atomically when on)
        launched = spy_launches(monkeypatch, tc, record=lambda n, a, m: (
            n, m.get("SUM_DIRS"), m.get("OUT_ADD"), m.get("ZERO_O", False)))
        poison_allocations(monkeypatch)
        x = [t.detach().requires_grad_() for t in xs]
        o = comba_bidirectional(*x, variant=variant, backend="triton")
        o.backward(do)
        monkeypatch.undo()
        grads[mode] = [o.detach()] + [t.grad for t in x]
        on = mode != "pair"
        assert {s for n, s, _, _ in launched if n == "_bwd_grads"} == {on}, launched
        # the output's launch (the state walk's storing phase or _fwd_output) adds both directions when on
        assert {a for n, _, a, _ in launched if n in ("_fwd_state", "_fwd_output")} == {on}, launched
        # every prepare launch (the tail's too) zeroes the output exactly when asked to
        assert {z for n, _, _, z in launched if n.startswith("_fwd_prepare")} == {mode == "prepare"}, launched
    for mode in ("fill", "prepare"):
        for a, b in zip(grads[mode], grads["pair"]):
            assert a.dtype == b.dtype and rel_err(a, b) <= 1e-6, (mode, rel_err(a, b))
    monkeypatch.setattr(tc, "ATOMIC_SUM", True)
    monkeypatch.setattr(tc, "SPLIT_BWD_MIN_BK", 128)
    monkeypatch.setenv("COMBA_BACKEND", "triton")
    errs = op_errors(shape, dtype, device, both=True, seed=7)
    assert max(errs.values()) <= BOUND[dtype], errs


@pytest.mark.skipif(not (INTERPRETING or HAS_CUDA), reason="needs CUDA or TRITON_INTERPRET=1")
@pytest.mark.parametrize("walk", ["state", "transition"])
def test_carry_precision(monkeypatch, walk):
    """COMBA_CARRY_PREC=tf32: the carry over the groups' summaries (_state_carry) launched on one-pass TF32 for half
    inputs, three-pass kept for float32 inputs, in the grouped state walk and the grouped transition walk; output
    and every gradient of both directions within each dtype's bound of the float64 chunk path. (The routing and the
    bounds: what one-pass TF32 costs in accuracy shows only on a GPU, next_s27c1.sh.)"""
    import comba_vision.ops.triton_chunk as tc
    from comba_vision.bench import op_errors
    monkeypatch.setattr(tc, "CARRY_PREC", "tf32")
    if walk == "state":
        monkeypatch.setattr(tc, "STATE_GROUP", 2)
        monkeypatch.setattr(tc, "TRANSITION_WALK", "0")
    else:
        monkeypatch.setattr(tc, "TRANSITION_WALK", "1")
        monkeypatch.setattr(tc, "TRANSITION_GROUP", 2)
    monkeypatch.setenv("COMBA_BACKEND", "triton")
    half = torch.bfloat16 if HAS_CUDA else torch.float16
    for dtype, want in ((half, {"tf32"}), (torch.float32, {"tf32x3"})):
        launched = spy_launches(monkeypatch, tc, "PREC")
        errs = op_errors((1, 330, 2, 32, 48), dtype, "cuda" if HAS_CUDA else "cpu", both=True, seed=11)
        assert max(errs.values()) <= BOUND[dtype], (dtype, errs)
        assert {prec for n, prec in launched if n == "_state_carry"} == want, launched


def test_walk_mode_choice(monkeypatch):
    """COMBA_TRANSITION_WALK: "auto" takes the transition walk exactly where the automatic grouped walk would run
    (never on the CPU), "1" wherever the state walks run below head size 128, "0" never; a forced group size keeps
    the grouped walk under "auto"; anything else is refused."""
    import comba_vision.ops.triton_chunk as tc
    cpu = torch.device("cpu")
    monkeypatch.setattr(tc, "STATE_HALVES_MIN_BK", 128)
    monkeypatch.setattr(tc, "STATE_GROUP", "auto")
    monkeypatch.setattr(tc, "TRANSITION_WALK", "auto")
    assert tc._walk_mode(256, 12, 64, 32, cpu) == 0
    monkeypatch.setattr(tc, "TRANSITION_WALK", "1")
    assert tc._walk_mode(256, 12, 64, 32, cpu) == tc.TRANSITION
    assert tc._walk_mode(2, 12, 64, 64, cpu) == tc.TRANSITION
    assert tc._walk_mode(256, 12, 128, 128, cpu) == 0
    monkeypatch.setattr(tc, "STATE_GROUP", 8)
    monkeypatch.setattr(tc, "TRANSITION_WALK", "auto")
    assert tc._walk_mode(256, 12, 64, 32, cpu) == 8
    monkeypatch.setattr(tc, "TRANSITION_WALK", "0")
    assert tc._walk_mode(256, 12, 64, 32, cpu) == 8
    monkeypatch.setattr(tc, "TRANSITION_GROUP", "auto")
    assert tc._transition_group(256, 12, 64, cpu) == 0
    monkeypatch.setattr(tc, "TRANSITION_GROUP", 4)
    assert (tc._transition_group(256, 12, 64, cpu), tc._transition_group(4, 12, 64, cpu)) == (4, 0)
    monkeypatch.setattr(tc, "TRANSITION_FOLD", "both")
    with pytest.raises(ValueError, match="COMBA_TRANSITION_FOLD"):
        tc._fold("fwd", 64, cpu, 32)
    monkeypatch.setattr(tc, "TRANSITION_FOLD", "bwd")
    assert (tc._fold("fwd", 64, cpu, 32), tc._fold("bwd", 64, cpu, 32)) == (False, True)
    monkeypatch.setattr(tc, "TRANSITION_FOLD", "1")  # never the backward's on CUDA at V <= 16
    assert [tc._fold("bwd", V, dev, 64) for V, dev in ((16, "cpu"), (16, "cuda"), (32, "cuda"), (64, cpu))] == [
        True, False, True, True]
    assert tc._fold("fwd", 16, "cuda", 64)
    monkeypatch.setattr(tc, "TRANSITION_FOLD", "auto")  # the default: both directions below padded head size 64
    assert [tc._fold(d, 64, cpu, bk) for d in ("fwd", "bwd") for bk in (16, 32, 64, 128)] == [True, True, False,
                                                                                              False] * 2
    assert not tc._fold("bwd", 16, "cuda", 32)
    monkeypatch.setattr(tc, "TRANSITION_WALK", "yes")
    with pytest.raises(ValueError, match="COMBA_TRANSITION_WALK"):
        tc._walk_mode(256, 12, 64, 32, cpu)
    if HAS_CUDA:
        dev = torch.device("cuda")
        monkeypatch.setattr(tc, "STATE_GROUP", "auto")
        monkeypatch.setattr(tc, "TRANSITION_WALK", "auto")
        assert tc._walk_mode(256, 1, 64, 32, dev) == tc.TRANSITION
        assert tc._walk_mode(16, 1, 64, 32, dev) == 0
        monkeypatch.setattr(tc, "TRANSITION_GROUP", "auto")
        assert (tc._transition_group(256, 1, 64, dev), tc._transition_group(64, 1, 64, dev)) == (16, 8)
        assert tc._transition_group(16, 1, 64, dev) == 0


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs CUDA")
@pytest.mark.parametrize("shape", [(1, 4097, 2, 64, 64), (8, 4096, 3, 32, 64), (2, 16385, 3, 32, 64)])
def test_gpu_bf16_transition_walk(monkeypatch, shape):
    """bf16 on the GPU, both directions, at long shapes where the default ("auto") takes the transition walk: half
    work buffers there, output and every gradient within the bf16 bound of float64 (bench.op_errors)."""
    import comba_vision.ops.triton_chunk as tc
    from comba_vision.bench import op_errors
    monkeypatch.setattr(tc, "HALF_BUFFERS", "1")
    monkeypatch.setattr(tc, "STATE_GROUP", "auto")
    monkeypatch.setattr(tc, "TRANSITION_WALK", "auto")
    B, T, H, K, V = shape
    assert tc._walk_mode(-(-T // tc.BT), 2 * B * H, V, max(16, K), torch.device("cuda")) == tc.TRANSITION
    assert {b.dtype for b in tc.empty_work_buffers(B, T, H, K, V, 2, torch.bfloat16, "cuda")} == {torch.bfloat16}
    launched = spy_launches(monkeypatch, tc, "BACKWARD")
    errs = op_errors(shape, torch.bfloat16, "cuda", both=True, seed=6)
    assert max(errs.values()) <= BOUND[torch.bfloat16], errs
    assert ("_affine_scan", True) in launched


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs CUDA")
@pytest.mark.parametrize("shape", [(2, 1025, 2, 32, 16), (2, 197, 3, 32, 16), (4, 4096, 3, 32, 64),
                                   (2, 1025, 2, 64, 64)])
def test_gpu_bf16_transition_fold(monkeypatch, shape):
    """COMBA_TRANSITION_FOLD=1 on the GPU, bf16, both directions: the blocked prepare and _bwd_dv_local writing the
    walk's maps, each on launch options of its own (_bwd_dv_local on 4 warps, where Triton 3.6 built the plain kernel
    wrong at V = 16 in session 18 and the folded one in session 20: there _chunk_affine's maps), at V = 16 and 64,
    head sizes 32 and 64, short and long: output and every gradient within the bf16 bound of float64."""
    import comba_vision.ops.triton_chunk as tc
    from comba_vision.bench import op_errors
    monkeypatch.setattr(tc, "TRANSITION_WALK", "1")
    monkeypatch.setattr(tc, "TRANSITION_FOLD", "1")
    launched = spy_launches(monkeypatch, tc, "AFFINE")
    errs = op_errors(shape, torch.bfloat16, "cuda", both=True, seed=8)
    assert max(errs.values()) <= BOUND[torch.bfloat16], errs
    assert ("_fwd_prepare_blocked", True) in launched
    # at V = 16 the backward's maps from _chunk_affine (Triton 3.6 built the folded _bwd_dv_local wrong there)
    assert ("_bwd_dv_local", shape[-1] > 16) in launched and ("_bwd_dv_local", shape[-1] <= 16) not in launched
