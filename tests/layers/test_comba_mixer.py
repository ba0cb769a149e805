"""The bidirectional mixer really sees both directions."""
import os

import pytest
import torch

from comba_vision.layers import CombaBlock, CombaMixer
from tests.ops.helpers import record_cast_misses, rel_err


def _mixer(seed=0, **kw):
    torch.manual_seed(seed)
    return CombaMixer(32, 2, **kw).eval()


def test_first_token_sees_last_and_back():
    m = _mixer()
    x = torch.randn(1, 36, 32, requires_grad=True)
    y = m(x, [(6, 6)])
    (g_first,) = torch.autograd.grad(y[0, 0].sum(), x, retain_graph=True)
    (g_last,) = torch.autograd.grad(y[0, -1].sum(), x)
    # token 35 is outside token 0's 3x3 neighbourhood, so only the reverse scan can carry it (and vice versa)
    assert g_first[0, -1].abs().sum() > 1e-4 * g_first[0, 0].abs().sum()
    assert g_last[0, 0].abs().sum() > 1e-4 * g_last[0, -1].abs().sum()


def test_reversed_sequence_swaps_the_two_scans():
    m = _mixer(variant="iplr")
    x = torch.randn(2, 20, 32)
    q, k, v, p, g, beta = m.scan_inputs(x, [(4, 5)])
    o_f, o_b = m.bidirectional(q, k, v, p, g, beta)
    r_f, r_b = m.bidirectional(*(t.flip(1) for t in (q, k, v, p, g, beta)))
    assert torch.allclose(r_f.flip(1), o_b, atol=1e-5, rtol=1e-4)
    assert torch.allclose(r_b.flip(1), o_f, atol=1e-5, rtol=1e-4)
    assert (o_f - o_b).abs().max() > 1e-2  # the two directions differ


def test_forget_gate_starts_close_to_one_and_feedback_is_weaker():
    m = _mixer()
    x = torch.randn(2, 16, 32)
    q, k, v, p, g, beta = m.scan_inputs(x, [(4, 4)])
    alpha = g.exp()
    assert alpha.min() > 0.8 and alpha.max() <= 1
    assert ((p.norm(dim=-1) / k.norm(dim=-1)) < 1).all()  # b = sigmoid(.) < 1
    assert torch.allclose(k.norm(dim=-1), torch.ones_like(k[..., 0]), atol=1e-5)


def test_segments_must_cover_sequence():
    m = _mixer()
    try:
        m(torch.randn(1, 10, 32), [(3, 3)])
    except ValueError as e:
        assert "cover 9 tokens" in str(e)
    else:
        raise AssertionError("no error for segments that do not cover the sequence")


def test_block_residual_shapes_and_segments():
    torch.manual_seed(0)
    blk = CombaBlock(32, 2, mlp_ratio=2.0).eval()
    x = torch.randn(2, 16 + 36, 32)
    y = blk(x, [(4, 4), (6, 6)])
    assert y.shape == x.shape and torch.isfinite(y).all()


def test_recompute_gives_the_same_outputs_and_gradients():
    """recompute=True (torch.utils.checkpoint around the parts before and after the operator) changes what
    is kept for the backward, not the numbers: outputs and every gradient equal the plain mixer's."""
    torch.manual_seed(0)
    plain = CombaMixer(32, 2, proj_drop=0.0)
    again = CombaMixer(32, 2, proj_drop=0.0, recompute=True)
    again.load_state_dict(plain.state_dict())
    x = torch.randn(2, 12, 32)
    outs = []
    for m in (plain, again):
        xi = x.clone().requires_grad_()
        y = m(xi, [(3, 4)])
        (y * torch.linspace(-1, 1, y.numel()).reshape(y.shape)).sum().backward()
        outs.append((y.detach(), xi.grad, {n: p.grad for n, p in m.named_parameters()}))
    torch.testing.assert_close(outs[1][0], outs[0][0], rtol=0, atol=0)
    torch.testing.assert_close(outs[1][1], outs[0][1], rtol=1e-6, atol=1e-7)
    for n, g in outs[0][2].items():
        torch.testing.assert_close(outs[1][2][n], g, rtol=1e-6, atol=1e-7, msg=n)
    with torch.no_grad():  # inference: no checkpointing at all, same output
        torch.testing.assert_close(again(x, [(3, 4)]), outs[0][0])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA autocast")
def test_operator_inputs_keep_the_autocast_dtype_on_cuda():
    """CUDA autocast computes F.normalize in float32; the operator must still get bf16 queries, keys and
    feedback keys like the values (else its kernels run float32 products and keep float32 buffers)."""
    m = CombaMixer(64, 2).cuda()
    x = torch.randn(2, 16, 64, device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        q, k, v, p, g, beta = m.scan_inputs(x, [(4, 4)])
    assert {q.dtype, k.dtype, v.dtype, p.dtype} == {torch.bfloat16}
    assert g.dtype == beta.dtype == torch.float32
    norms = k.float().norm(dim=-1)
    assert (norms - 1).abs().max() < 1e-2  # still unit keys after the rounding


@pytest.mark.skipif(not (torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1"),
                    reason="needs CUDA or TRITON_INTERPRET=1")
@pytest.mark.parametrize("recompute", [False, True])
def test_fused_kernels_give_the_mixer_the_same_outputs_and_gradients(monkeypatch, recompute):
    """The mixer on the fused kernels (what CUDA runs: input preparation, output norm and gate) against the
    PyTorch ops: output and the gradients of the input and of every parameter, float32; also with the prep
    and both scans as one autograd node, and with recompute, whose output side then projects the output
    gate from x on its own."""
    import comba_vision.layers.comba_mixer as cm
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    m = CombaMixer(48, 2, recompute=recompute).to(dev)
    with torch.no_grad():  # away from the initial values, so every parameter's gradient path counts
        for prm in (m.A_log, m.dt_bias, m.b_logit, m.d):
            prm.add_(0.3 * torch.randn_like(prm))
    x = torch.randn(2, 35, 48, device=dev)  # 70 tokens: three programs of 32, the last one partial
    w = torch.randn(2, 35, 48, device=dev)
    outs = []
    # PyTorch ops; fused prep and output kernels; with the prep and both scans as one node (mixer_scan, what
    # CUDA training runs; not under recompute)
    for fused, scan in ((False, False), (True, False), (True, not recompute)):
        monkeypatch.setattr(cm, "fused_applies", lambda t, fused=fused: fused)
        monkeypatch.setattr(cm, "mixer_scan_applies", lambda t, scan=scan: scan)
        m.zero_grad()
        xi = x.clone().requires_grad_()
        y = m(xi, [(5, 7)])
        (y * w).sum().backward()
        outs.append((y.detach(), xi.grad, {n: p.grad.clone() for n, p in m.named_parameters()}))
    for out in outs[1:]:
        assert rel_err(out[0], outs[0][0]) <= 1e-5 and rel_err(out[1], outs[0][1]) <= 1e-5
        for n, g in outs[0][2].items():
            assert rel_err(out[2][n], g) <= 1e-5, n


def test_padded_joint_projection_changes_nothing(monkeypatch):
    """The joint input projection padded to an aligned width (what CUDA runs): the same outputs and the same
    gradients as unpadded, and the padding columns are not returned."""
    import comba_vision.layers.comba_mixer as cm
    torch.manual_seed(0)
    mixer = cm.CombaMixer(64, 2)
    x = torch.randn(2, 9, 64, requires_grad=True)
    runs = []
    for align in (1, 64):
        monkeypatch.setattr(cm, "_in_proj_pad", lambda width, x, a=align: (-width) % a)
        mixer.zero_grad()
        x.grad = None
        outs = mixer._in_proj(x)
        width = sum(o.shape[-1] for o in outs)
        assert outs[0].stride(1) == width + (-width) % align  # the GEMM's output rows are the padded width
        sum(((o.float() * (i + 1)) ** 2).sum() for i, o in enumerate(outs)).backward()
        runs.append(([o.detach() for o in outs], x.grad.clone(), [p.grad.clone() for p in mixer.parameters()
                                                                 if p.grad is not None]))
    (o1, gx1, gp1), (o2, gx2, gp2) = runs
    assert [o.shape for o in o1] == [o.shape for o in o2] and o1[0].shape[-1] == sum(mixer.qkv_dims)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(o1 + [gx1] + gp1, o2 + [gx2] + gp2))
    assert len(gp1) == len(gp2) == 6  # the weight and bias of qkv, out_gate, gates


@pytest.mark.skipif(not (torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1"),
                    reason="needs CUDA or TRITON_INTERPRET=1")
def test_block_weight_casts_change_nothing(monkeypatch):
    """A block whose Linear layers take ops.linear under autocast casts their weights once (cast_once over the
    joint projection's pieces, proj, fc1 and fc2): every linear call is served from it, and the output and all
    gradients equal those of the same block casting layer by layer."""
    import comba_vision.layers.comba_mixer as cm
    import comba_vision.layers.fused as fused
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    dt = torch.bfloat16 if dev == "cuda" else torch.float16
    for mod in (cm, fused):
        monkeypatch.setattr(mod, "fused_linear_applies", lambda t: True)
    torch.manual_seed(0)
    block = CombaBlock(64, 2).to(dev)
    x = torch.randn(2, 40, 64, device=dev)
    misses = record_cast_misses(monkeypatch)
    runs = []
    for once in (True, False):
        if not once:
            monkeypatch.setattr(CombaBlock, "_weight_casts", lambda self, x: cm.nullcontext())
        block.zero_grad(set_to_none=True)
        misses.clear()
        with torch.autocast(dev, dtype=dt):
            y = block(x, [(5, 8)])
        (y.float() * torch.linspace(-1, 1, y.numel(), device=dev).view(y.shape)).sum().backward()
        runs.append([y.detach()] + [p.grad for p in block.parameters()])
        assert (not misses) == once and all(g.dtype == torch.float32 for g in runs[-1][1:])
    for a, b in zip(*runs, strict=True):
        assert torch.equal(a, b)


@pytest.mark.skipif(not (torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1"),
                    reason="needs CUDA or TRITON_INTERPRET=1")
@pytest.mark.parametrize("mlp_node", [False, True])
def test_gelu_recompute_keeps_one_hidden_tensor_less(monkeypatch, mlp_node):
    """COMBA_GELU_RECOMPUTE: where the fused norm and Linear apply, the MLP's fc2 takes its GELU inside
    (ops.linear act="gelu") and the block keeps one [B, N, hidden] tensor for the backward, not two; with
    COMBA_MLP_RECOMPUTE the whole MLP is one node (ops.mlp) and the block keeps none. The block's output and every
    gradient are those of the plain GELU and fc2 (float32: to rounding)."""
    import comba_vision.layers.comba_mixer as cm
    import comba_vision.layers.fused as fused
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    for mod in (cm, fused):
        monkeypatch.setattr(mod, "fused_linear_applies", lambda t: True)
        monkeypatch.setattr(mod, "fused_norm_applies", lambda t: True)
    monkeypatch.setattr(cm, "MLP_RECOMPUTE", mlp_node)
    torch.manual_seed(0)
    block = CombaBlock(64, 2).to(dev)
    x = torch.randn(2, 40, 64, device=dev)
    runs = []
    for on in (False, True):
        monkeypatch.setattr(cm, "GELU_RECOMPUTE", on)
        block.zero_grad(set_to_none=True)
        hidden = []
        with torch.autograd.graph.saved_tensors_hooks(
                lambda t, h=hidden: h.append(t.untyped_storage().data_ptr()) or t if t.shape == (2, 40, 256) else t,
                lambda t: t):
            y = block(x, [(5, 8)])
        (y * torch.linspace(-1, 1, y.numel(), device=dev).view(y.shape)).sum().backward()
        runs.append([y.detach()] + [p.grad for p in block.parameters()])
        assert len(set(hidden)) == (2 if not on else 0 if mlp_node else 1)
    from tests.ops.helpers import rel_err
    for a, b in zip(*runs, strict=True):
        assert rel_err(b, a) <= 1e-5


def _joint_block(monkeypatch):
    """(device, the half dtype autocast takes there, a CombaBlock(64, 2) with fused norms) with every fused block
    kernel forced on, the mixer's joint node included (on the CPU under TRITON_INTERPRET=1: float16)."""
    import comba_vision.layers.comba_mixer as cm
    import comba_vision.layers.fused as fused
    import comba_vision.ops.dwconv as dw
    import comba_vision.ops.mixer_fused as mf
    from comba_vision.layers import FusedLayerNorm
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    for mod in (cm, fused):
        monkeypatch.setattr(mod, "fused_linear_applies", lambda t: True)
        monkeypatch.setattr(mod, "fused_norm_applies", lambda t: True)
    monkeypatch.setattr(dw, "applies", lambda *a: True)
    monkeypatch.setattr(mf, "fused_applies", lambda t: True)
    monkeypatch.setattr(cm, "mixer_joint_applies", lambda y, conv: conv.bias is not None)
    torch.manual_seed(0)
    return dev, torch.bfloat16 if dev == "cuda" else torch.float16, CombaBlock(64, 2, norm_layer=FusedLayerNorm).to(dev)


def _pending_run(block, x, r, dtype):
    """The block on the stream x with the pending branch r under autocast in dtype (float32: none), backpropagated:
    ([output, x's gradient, every parameter's gradient], how many 2-byte tensors of x's size it kept)."""
    from comba_vision.layers.comba_mixer import Branch
    block.zero_grad(set_to_none=True)
    xx = x.clone().requires_grad_()
    kept = {}
    with torch.autocast(x.device.type, dtype=dtype, enabled=dtype != torch.float32), \
            torch.autograd.graph.saved_tensors_hooks(
                lambda t: (kept.setdefault(t.untyped_storage().data_ptr(), t), t)[1], lambda t: t):
        s, m = block.forward_pending(xx, Branch(r), [(5, 8)])
        y = s + m.merged()
    (y.float() * torch.linspace(-1, 1, y.numel(), device=x.device).view(y.shape)).sum().backward()
    run = [y.detach().float(), xx.grad] + [p.grad for p in block.parameters()]
    return run, sum(t.element_size() == 2 and t.numel() == x.numel() for t in kept.values())


@pytest.mark.skipif(not (torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1"),
                    reason="needs CUDA or TRITON_INTERPRET=1")
def test_norm_fold_keeps_two_tensors_less_and_matches(monkeypatch):
    """COMBA_NORM_FOLD: with the fused block kernels under autocast (float16 on the CPU, bf16 on CUDA), norm1 folds
    into the joint projection and norm2 into fc1: the block keeps two [B, N, C] half tensors less for the backward
    (each norm's x^ is the Linear layer's input, no output y besides), and its output and every gradient (the
    norms' weights and biases included) are as close to the float32 block's (no autocast) as the unfolded block's
    (within 2x, plus 1e-3)."""
    import comba_vision.ops.layer_norm as ln
    dev, half, block = _joint_block(monkeypatch)
    with torch.no_grad():
        for norm in (block.norm1, block.norm2):
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.normal_(0, 0.3)
    x, r = torch.randn(2, 2, 40, 64, device=dev).unbind(0)
    runs, halves = [], []
    for on, dt in ((False, torch.float32), (False, half), (True, half)):
        monkeypatch.setattr(ln, "NORM_FOLD", on)
        run, n_half = _pending_run(block, x, r, dt)
        runs.append(run)
        halves.append(n_half)
    assert halves[2] == halves[1] - 2, halves
    names = ["y", "x"] + [n for n, _ in block.named_parameters()]
    for name, ref, plain, folded in zip(names, *runs, strict=True):  # against float32: as close as unfolded
        assert rel_err(folded, ref) <= 2 * rel_err(plain, ref) + 1e-3, name


@pytest.mark.skipif(not (torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1"),
                    reason="needs CUDA or TRITON_INTERPRET=1")
def test_proj_in_joint_node_keeps_its_input_no_more(monkeypatch):
    """COMBA_PROJ_IN_JOINT: where the mixer takes its joint node and proj's bias goes to the norm, proj runs inside
    that node, which writes proj's input again in its backward: the block keeps one [B, N, C] half tensor less, and
    its output and every gradient are those of proj as its own layer (the same GEMMs: to float rounding)."""
    import comba_vision.layers.comba_mixer as cm
    dev, half, block = _joint_block(monkeypatch)
    x, r = torch.randn(2, 2, 40, 64, device=dev).unbind(0)
    runs, halves, calls = [], [], []
    real = cm.mixer_joint
    monkeypatch.setattr(cm, "mixer_joint", lambda *a, **k: calls.append(k.get("proj_w") is not None) or real(*a, **k))
    for on in (False, True):
        monkeypatch.setattr(cm, "PROJ_IN_JOINT", on)
        run, n_half = _pending_run(block, x, r, half)
        runs.append(run)
        halves.append(n_half)
    assert calls == [False, True]
    assert halves[1] == halves[0] - 1, halves
    names = ["y", "x"] + [n for n, _ in block.named_parameters()]
    for name, a, b in zip(names, *runs, strict=True):
        assert rel_err(b, a) <= 1e-5, name
