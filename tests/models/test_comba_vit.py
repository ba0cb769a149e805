"""Comba-ViT as a timm model: the checks timm runs on its own models, sizes, pretrained loading."""
from __future__ import annotations

import os
from contextlib import nullcontext

import pytest
import timm
import torch

import comba_vision  # noqa: F401  (registers the models)
from comba_vision.layers import recurrence_macs
from comba_vision.models import CombaViT, count_macs

IMG = 64


def _micro(**kw):
    torch.manual_seed(0)
    return timm.create_model("comba_micro", img_size=IMG, **kw)


def test_registered_with_timm():
    assert {"comba_micro", "comba_tiny", "comba_small"} <= set(timm.list_models("comba*"))
    assert isinstance(timm.create_model("comba_tiny"), CombaViT)


def test_forward_backward_reaches_every_parameter():
    model = _micro(num_classes=42)
    x = torch.randn(2, 3, IMG, IMG)
    out = model(x)
    assert out.shape == (2, 42) and not torch.isnan(out).any()
    out.mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"parameters without a finite gradient: {missing}"
    zero = [n for n, p in model.named_parameters() if p.grad.abs().sum() == 0]
    assert not zero, f"parameters with an all-zero gradient: {zero}"


@pytest.mark.parametrize("name", ["comba_micro", "comba_tiny", "comba_small"])
def test_default_cfg(name):
    model = timm.create_model(name)
    cfg = model.pretrained_cfg
    assert cfg["input_size"] == (3, 224, 224) and cfg["interpolation"] == "bicubic"
    assert cfg["crop_pct"] == 0.875 and cfg["num_classes"] == 1000
    assert tuple(cfg["mean"]) == timm.data.IMAGENET_DEFAULT_MEAN and tuple(cfg["std"]) == timm.data.IMAGENET_DEFAULT_STD
    state = model.state_dict()
    assert cfg["first_conv"] + ".weight" in state and state[cfg["first_conv"] + ".weight"].shape[1] == 3
    assert cfg["classifier"] + ".weight" in state and state[cfg["classifier"] + ".weight"].shape[0] == 1000
    assert not cfg.get("url") and not cfg.get("hf_hub_id")  # nothing is ever downloaded


def test_forward_head_pre_logits_and_reset_classifier():
    model = _micro().eval()
    x = torch.randn(2, 3, IMG, IMG)
    feats = model.forward_features(x)
    assert feats.shape == (2, (IMG // 16) ** 2, model.num_features)
    pre = model.forward_head(feats, pre_logits=True)
    assert pre.shape == (2, model.num_features)
    assert torch.allclose(model.forward_head(feats), model.get_classifier()(pre))
    model.reset_classifier(0)
    assert model(x).shape == (2, model.num_features)
    model.reset_classifier(7)
    assert model(x).shape == (2, 7)
    assert _micro(num_classes=0)(x).shape == (2, model.num_features)


def test_features_only_and_intermediates():
    x = torch.randn(2, 3, IMG, IMG)
    fm = timm.create_model("comba_micro", img_size=IMG, features_only=True, out_indices=(1, 3))
    feats = fm(x)
    assert [f.shape for f in feats] == [(2, 64, 4, 4)] * 2
    assert fm.feature_info.channels() == [64, 64] and fm.feature_info.reduction() == [16, 16]

    model = _micro().eval()
    final, inter = model.forward_intermediates(x, indices=[0, 2])
    assert final.shape == (2, 16, 64) and [t.shape for t in inter] == [(2, 64, 4, 4)] * 2
    nlc = model.forward_intermediates(x, indices=2, output_fmt="NLC", intermediates_only=True)
    assert [t.shape for t in nlc] == [(2, 16, 64)] * 2
    # the last intermediate with norm equals forward_features, reshaped
    last = model.forward_intermediates(x, indices=[3], norm=True, intermediates_only=True)[0]
    assert torch.allclose(last.flatten(2).transpose(1, 2), model.forward_features(x), atol=1e-6)
    early = model.forward_intermediates(x, indices=[1], stop_early=True, intermediates_only=True)[0]
    assert torch.allclose(early, model.forward_intermediates(x, indices=[1])[1][0])


def test_grad_checkpointing_matches():
    model = _micro(num_classes=10, drop_path_rate=0.0)
    x = torch.randn(2, 3, IMG, IMG)
    out = model(x)
    out.square().sum().backward()
    g_ref = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    model.set_grad_checkpointing()
    out2 = model(x)
    out2.square().sum().backward()
    torch.testing.assert_close(out2, out, rtol=1e-4, atol=1e-6)
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, g_ref[n], rtol=1e-4, atol=1e-6, msg=n)


def test_blocks_get_a_dense_residual_stream():
    """The blocks see [B, N, C] tokens in row-major memory, at the training size and at another size (the
    patch embedding's NHWC output is a permuted view; carried as such, every LayerNorm copied it)."""
    seen = []
    model = timm.create_model("comba_micro", img_size=IMG, dynamic_img_size=True)
    for blk in model.blocks:
        blk.register_forward_pre_hook(lambda mod, args: seen.append(args[0].is_contiguous()))
    model(torch.randn(2, 3, IMG, IMG))
    model(torch.randn(1, 3, 48, 80))
    assert seen == [True] * (2 * len(model.blocks))


def test_any_input_size():
    x = torch.randn(1, 3, 96, 128)
    model = timm.create_model("comba_micro", img_size=(96, 128))
    assert model(x).shape == (1, 1000)
    dyn = timm.create_model("comba_micro", dynamic_img_size=True)
    assert dyn(torch.randn(1, 3, 80, 112)).shape == (1, 1000)
    assert dyn(torch.randn(1, 3, 224, 224)).shape == (1, 1000)
    with pytest.raises(AssertionError):  # fixed-size model refuses a wrong size (timm's PatchEmbed check)
        timm.create_model("comba_micro")(torch.randn(1, 3, 80, 112))
    gray = timm.create_model("comba_micro", in_chans=1, img_size=IMG)
    assert gray(torch.randn(1, 1, IMG, IMG)).shape == (1, 1000)


def test_drop_path_rate_and_optimizer_groups():
    model = timm.create_model("comba_micro", drop_path_rate=0.3)
    rates = [b.drop_path1.drop_prob if hasattr(b.drop_path1, "drop_prob") else 0.0 for b in model.blocks]
    assert rates[0] == 0.0 and abs(rates[-1] - 0.3) < 1e-6 and rates == sorted(rates)
    assert "pos_embed" in model.no_weight_decay()
    from timm.optim import create_optimizer_v2
    opt = create_optimizer_v2(model, "adamw", lr=1e-3, weight_decay=0.05, layer_decay=0.75)
    n_groups_params = sum(len(g["params"]) for g in opt.param_groups)
    assert n_groups_params == len(list(model.parameters()))
    scales = {round(g["lr_scale"], 6) for g in opt.param_groups}
    assert len(scales) == len(model.blocks) + 2  # stem, each block, head/norm


def test_pretrained_from_local_file(tmp_path):
    src = _micro().eval()
    path = tmp_path / "weights.pth"
    torch.save(src.state_dict(), path)
    loaded = timm.create_model("comba_micro", img_size=IMG, pretrained=True,
                               pretrained_cfg_overlay=dict(file=str(path))).eval()
    x = torch.randn(2, 3, IMG, IMG)
    assert torch.equal(loaded(x), src(x))
    # a training checkpoint (dict with "model"), another input size and class count: position embedding
    # resampled, backbone identical, new head (timm drops a classifier of the wrong size)
    torch.save({"model": src.state_dict(), "epoch": 3}, path)
    other = timm.create_model("comba_micro", img_size=96, num_classes=5, pretrained=True,
                              pretrained_cfg_overlay=dict(file=str(path))).eval()
    assert other.pos_embed.shape == (1, 36, 64)
    assert other.forward_features(torch.zeros(1, 3, 96, 96)).shape == (1, 36, 64)
    for name, p in src.blocks.named_parameters():
        assert torch.equal(other.blocks.get_parameter(name), p), name
    assert other(torch.randn(1, 3, 96, 96)).shape == (1, 5)
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        timm.create_model("comba_micro", pretrained=True, pretrained_cfg_overlay=dict(file=str(tmp_path / "nope.pth")))


def _analytic_macs(dim, depth, heads, mlp_ratio, img=224, patch=16, classes=1000):
    """Independent count: projections, convolutions and MLP per token, recurrence by formula."""
    N = (img // patch) ** 2
    V = dim // heads
    K = V // 2
    width = 2 * heads * K + heads * V
    per_token = dim * width + 9 * width + dim * 2 * heads + 2 * dim * dim + 2 * dim * int(dim * mlp_ratio)
    rec = recurrence_macs(1, N, heads, K, V)
    return N * 3 * patch * patch * dim + depth * (N * per_token + rec) + dim * classes


@pytest.mark.parametrize("name, params_m, gmacs, dims", [
    ("comba_tiny", 5.8, 1.1, (192, 12, 3, 4.0)),
    ("comba_small", 22.6, 4.4, (384, 12, 6, 4.0)),
])
def test_sizes_match_paper(name, params_m, gmacs, dims):
    model = timm.create_model(name)
    n = sum(p.numel() for p in model.parameters()) / 1e6
    assert abs(n - params_m) / params_m <= 0.03, f"{name}: {n:.3f}M parameters vs {params_m}M"
    macs = count_macs(model)
    assert abs(macs / 1e9 - gmacs) / gmacs <= 0.10, f"{name}: {macs / 1e9:.3f} GMACs vs {gmacs}"
    expected = _analytic_macs(*dims)
    # LayerNorms, pooling and gates are not matrix products: the two counts agree to a fraction of a percent
    assert abs(macs - expected) / expected < 0.005, (macs, expected)


def test_forward_tokens_for_other_pipelines():
    model = _micro().eval()
    template = torch.randn(2, 16, 64)
    search = torch.randn(2, 36, 64)
    out = model.forward_tokens(torch.cat([template, search], 1), [(4, 4), (6, 6)])
    assert out.shape == (2, 52, 64) and torch.isfinite(out).all()


def test_torch_compile_traces():
    model = _micro().eval()
    x = torch.randn(2, 3, IMG, IMG)
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(compiled(x), model(x), rtol=1e-5, atol=1e-5)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    model = _micro().eval()
    x = torch.randn(2, 3, IMG, IMG)
    ref = model(x)
    out = model.cuda()(x.cuda()).cpu()
    assert (out - ref).norm() / ref.norm() < 1e-3
    torch.compile(model)(x.cuda())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("fused_blocks", [False, True])
def test_cuda_gradients_match_cpu(fused_blocks):
    """A float32 training step's gradients on CUDA (Triton operator, fused mixer kernels, padded joint
    projection; with fused_blocks also the fused LayerNorm and Linear kernels of the package's CUDA graphs)
    against the CPU model's (PyTorch ops)."""
    from comba_vision.ops import fused_block_kernels
    model = _micro(drop_path_rate=0.0).train()
    x = torch.randn(4, 3, IMG, IMG)
    model(x).square().sum().backward()
    ref = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    with fused_block_kernels() if fused_blocks else nullcontext():
        model.cuda()(x.cuda()).square().sum().backward()
    for n, p in model.named_parameters():
        err = ((p.grad.cpu() - ref[n]).norm() / ref[n].norm().clamp_min(1e-30)).item()
        assert err <= 1e-3, f"{n}: {err:.2e}"


@pytest.mark.skipif(os.environ.get("TRITON_INTERPRET", "0") != "1", reason="runs the Triton kernels interpreted")
def test_torch_compile_with_triton_custom_ops(monkeypatch):
    """The CUDA path's custom ops (here run by Triton's interpreter) trace under torch.compile, forward and
    backward, and agree with the PyTorch path."""
    model = timm.create_model("comba_micro", img_size=32, depth=1, num_classes=3)
    x = torch.randn(1, 3, 32, 32)
    ref = model(x)
    ref.sum().backward()
    mixer = model.blocks[0].mixer
    g_ref = {n: getattr(mixer, n).weight.grad.clone() for n in ("qkv", "gates", "out_gate")}
    model.zero_grad()
    monkeypatch.setenv("COMBA_BACKEND", "triton")
    monkeypatch.setattr("comba_vision.layers.fused.fused_norm_applies", lambda x: True)  # the fused LayerNorm,
    monkeypatch.setattr("comba_vision.layers.fused.fused_linear_applies", lambda x: True)  # Linear,
    monkeypatch.setattr("comba_vision.layers.comba_mixer.fused_linear_applies", lambda x: True)  # joint projection
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    out = compiled(x)
    out.sum().backward()
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    for n, g in g_ref.items():  # the joint projection's three pieces
        torch.testing.assert_close(getattr(mixer, n).weight.grad, g, rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("checkpointing", [False, True])
def test_pending_residual_chain_matches_block_calls(checkpointing):
    """CombaViT chains its blocks by their pending residual branch (CombaBlock.forward_pending, each add inside
    the next LayerNorm); with a hook on a block it calls every block as a module instead. Both give the same
    logits, gradients and intermediates (final norm, no norm, NLC), with and without gradient checkpointing,
    as each block's own forward does."""
    model = _micro(drop_path_rate=0.0)
    model.set_grad_checkpointing(checkpointing)
    x = torch.randn(2, 3, IMG, IMG)

    def run():
        model.zero_grad(set_to_none=True)
        out = model(x)
        out.square().sum().backward()
        inter = model.forward_intermediates(x, indices=[0, 2], output_fmt="NLC")
        raw = model.forward_intermediates(x, indices=[1, 3], norm=True, intermediates_only=True)
        return out, {n: p.grad for n, p in model.named_parameters()}, inter, raw

    chained = run()
    calls = []
    handle = model.blocks[1].register_forward_pre_hook(lambda mod, args: calls.append(args[0].shape))
    as_modules = run()
    handle.remove()
    assert calls, "with a hook the blocks run as modules"
    tokens, segments = model._pos_embed(model.patch_embed(x))
    ref = tokens
    for blk in model.blocks:
        ref = blk(ref, segments)
    torch.testing.assert_close(chained[0], model.forward_head(model.norm(ref)), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(chained[0], as_modules[0], rtol=1e-5, atol=1e-6)
    for n, g in chained[1].items():
        torch.testing.assert_close(g, as_modules[1][n], rtol=1e-4, atol=1e-7, msg=n)
    def flat(r):
        return [r[2][0], *r[2][1], *r[3]]
    for a, b in zip(flat(chained), flat(as_modules), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_blocks_run_as_modules_when_watched(monkeypatch):
    """The blocks are chained (forward_pending with the previous block's branch) only when nothing would miss a
    module call: any hook on a block (forward, backward, global) or gradient checkpointing makes the model call
    every block as a module; a hook on a norm sees that norm called as a module either way."""
    from comba_vision.layers.comba_mixer import CombaBlock
    model = _micro(drop_path_rate=0.0)
    x = torch.randn(1, 3, IMG, IMG)
    pending = []
    real = CombaBlock.forward_pending

    def spy(self, x, r=None, segments=None):
        pending.append(r is not None)
        return real(self, x, r, segments)
    monkeypatch.setattr(CombaBlock, "forward_pending", spy)

    def chained():
        pending.clear()
        model(x).sum().backward()
        return any(pending)

    assert chained()
    for register in (lambda: model.blocks[2].register_forward_hook(lambda *a: None),
                     lambda: model.blocks[0].register_full_backward_hook(lambda *a: None),
                     lambda: torch.nn.modules.module.register_module_forward_pre_hook(lambda *a: None)):
        handle = register()
        try:
            assert not chained()
        finally:
            handle.remove()
    model.set_grad_checkpointing(True)
    assert not chained()
    model.set_grad_checkpointing(False)
    from comba_vision.layers.fused import FusedLayerNorm

    def kernel_like(self, x, r, rb=None, fold=False):  # as the fused kernel: the norm is not called as a module
        s = x + (r if rb is None else r + rb)
        return s, torch.nn.functional.layer_norm(s, self.normalized_shape, self.weight, self.bias, self.eps)
    monkeypatch.setattr(FusedLayerNorm, "residual", kernel_like)
    seen = []
    norms = (model.blocks[1].norm1, model.norm)
    handles = [n.register_forward_hook(lambda m, a, o: seen.append(o.shape)) for n in norms]
    assert chained() and len(seen) == 2
    for h in handles:
        h.remove()


@pytest.mark.skipif(not (torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1"),
                    reason="the fused LayerNorm needs CUDA or TRITON_INTERPRET=1")
def test_branch_bias_in_norm_matches(monkeypatch):
    """COMBA_BRANCH_BIAS_IN_NORM: the biases of the mixer's proj and the MLP's fc2 added by the fused LayerNorm
    that takes each branch (norm2, the next block's norm1, the final norm) give the logits, every gradient and
    the intermediates of the biases in the GEMMs; each of those norms gets one (2 a block); in training mode no
    branch that a drop path follows hands its bias on."""
    import comba_vision.layers.comba_mixer as cm
    import comba_vision.layers.fused as fused
    from comba_vision.ops.layer_norm import add_layer_norm
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    for mod in (fused, cm):
        monkeypatch.setattr(mod, "fused_norm_applies", lambda x: True)
    rbs = []
    monkeypatch.setattr(fused, "add_layer_norm", lambda *a, rb=None, **k: rbs.append(rb) or add_layer_norm(
        *a, rb=rb, **k))
    model = _micro(drop_path_rate=0.0).to(dev)
    x = torch.randn(2, 3, IMG, IMG, device=dev)

    def run(on):
        monkeypatch.setattr(cm, "BRANCH_BIAS_IN_NORM", on)
        rbs.clear()
        model.zero_grad(set_to_none=True)
        out = model(x)
        (out * torch.linspace(-1, 1, out.numel(), device=dev).view(out.shape)).sum().backward()
        inter = model.forward_intermediates(x, indices=[1, 3], norm=True, intermediates_only=True)
        return [out, *inter], {n: p.grad for n, p in model.named_parameters()}, [rb is not None for rb in rbs]

    (outs0, grads0, rb0), (outs1, grads1, rb1) = run(False), run(True)
    depth = len(model.blocks)
    assert not any(rb0) and sum(rb1[:2 * depth]) == 2 * depth  # the training forward's norms, then intermediates'
    for a, b in zip(outs0, outs1, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)
    for n, g in grads0.items():
        torch.testing.assert_close(grads1[n], g, rtol=1e-4, atol=1e-7, msg=n)
    model = _micro(drop_path_rate=0.1).to(dev).train()  # drop paths from the second block on (the first's rate 0)
    rbs.clear()
    model(x)
    assert [rb is not None for rb in rbs] == [True, True] + [False] * (2 * depth - 2)
    model.eval()  # drop paths off: every branch's bias again
    rbs.clear()
    with torch.no_grad():
        model(x)
    assert all(rb is not None for rb in rbs) and len(rbs) == 2 * depth
    model = _micro(proj_drop_rate=0.1).to(dev).train()  # a dropout after proj and fc2: their biases stay
    rbs.clear()
    model(x)
    assert rbs and not any(rb is not None for rb in rbs)
    seen = []  # a global hook: the blocks, mixers and MLPs called as modules, no bias handed on
    handle = torch.nn.modules.module.register_module_forward_hook(lambda m, a, o: seen.append(type(m).__name__))
    try:
        rbs.clear()
        model.eval()(x)
    finally:
        handle.remove()
    assert {"CombaBlock", "CombaMixer", "Mlp"} <= set(seen)
    assert not any(rb is not None for rb in rbs)


@pytest.mark.parametrize("on", [False, True])
@pytest.mark.parametrize("hook", ["module", "global"])
def test_block_submodules_called_as_modules(monkeypatch, on, hook):
    """Hooks on a block's mixer and MLP, or a global module hook, see every call of them, with or without
    COMBA_BRANCH_BIAS_IN_NORM (the chained blocks take the mixer and the MLP apart only where no hook would miss it)."""
    import comba_vision.layers.comba_mixer as cm
    monkeypatch.setattr(cm, "BRANCH_BIAS_IN_NORM", on)
    model = _micro(drop_path_rate=0.0)
    seen = []
    handles = []
    if hook == "module":
        for blk in model.blocks:
            handles += [blk.mixer.register_forward_hook(lambda m, a, o: seen.append(type(m).__name__)),
                        blk.mlp.register_forward_hook(lambda m, a, o: seen.append(type(m).__name__))]
    else:
        handles.append(torch.nn.modules.module.register_module_forward_hook(
            lambda m, a, o: seen.append(type(m).__name__)))
    try:
        model(torch.randn(1, 3, IMG, IMG))
    finally:
        for h in handles:
            h.remove()
    assert seen.count("CombaMixer") == seen.count("Mlp") == len(model.blocks)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="bf16 autocast with the fused block kernels on the GPU")
def test_branch_bias_in_norm_bf16_on_gpu(monkeypatch):
    """COMBA_BRANCH_BIAS_IN_NORM under bf16 autocast with every fused block kernel (the joint mixer node, the fused
    Linear with no bias, the norms with a float32 branch bias on a bf16 branch): logits (2e-2) and every gradient
    (5e-2) within bf16 rounding of the run with the biases in the GEMMs."""
    import comba_vision.layers.comba_mixer as cm
    from comba_vision.ops import fused_block_kernels
    from tests.ops.helpers import rel_err
    model = _micro(drop_path_rate=0.0).cuda()
    x = torch.randn(4, 3, IMG, IMG, device="cuda")
    runs = []
    for on in (False, True):
        monkeypatch.setattr(cm, "BRANCH_BIAS_IN_NORM", on)
        model.zero_grad(set_to_none=True)
        with fused_block_kernels(), torch.autocast("cuda", dtype=torch.bfloat16):
            out = model(x)
        (out.float() * torch.linspace(-1, 1, out.numel(), device="cuda").view(out.shape)).sum().backward()
        runs.append([out.detach()] + [p.grad.clone() for p in model.parameters()])
    names = ["logits"] + [n for n, _ in model.named_parameters()]
    for name, a, b in zip(names, *runs, strict=True):  # both sides rounded to bf16 on their own
        assert rel_err(b, a) <= (2e-2 if name == "logits" else 5e-2), name


@pytest.mark.skipif(not (torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1"),
                    reason="needs CUDA or TRITON_INTERPRET=1")
def test_chained_blocks_cast_their_weights_once(monkeypatch):
    """Chained blocks whose Linear layers take ops.linear under autocast: one cast_once for the weights of every
    block (eight groups a block: the joint projection's weight and bias pieces, proj, fc1 and fc2), none left to
    the blocks' own contexts, and the logits and every gradient equal to those of casting layer by layer."""
    import comba_vision.layers.comba_mixer as cm
    import comba_vision.layers.fused as fused
    import comba_vision.ops.linear as L
    from tests.ops.helpers import record_cast_misses
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    dt = torch.bfloat16 if dev == "cuda" else torch.float16
    for mod in (cm, fused):
        monkeypatch.setattr(mod, "fused_linear_applies", lambda t: True)
    model = _micro().to(dev)
    x = torch.randn(2, 3, IMG, IMG, device=dev)
    served = []
    once = L.cast_once

    def counting(groups, dtype):
        outer = getattr(L._CASTS, "table", {})
        served.append(sum(L._key(L._as_pieces(g), dtype) not in outer for g in groups))
        return once(groups, dtype)
    monkeypatch.setattr(cm, "cast_once", counting)
    misses = record_cast_misses(monkeypatch)
    runs = []
    for on in (True, False):
        if not on:
            monkeypatch.setattr(cm, "cast_once", lambda groups, dtype: nullcontext())
        model.zero_grad(set_to_none=True)
        with torch.autocast(dev, dtype=dt):
            out = model(x)
        (out.float() * torch.linspace(-1, 1, out.numel(), device=dev).view(out.shape)).sum().backward()
        runs.append([out.detach()] + [p.grad for p in model.parameters()])
        if on:
            assert not misses
    assert served == [8 * len(model.blocks)] + [0] * len(model.blocks) and misses
    for a, b in zip(*runs, strict=True):
        assert torch.equal(a, b)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="bf16 autocast with the fused block kernels on the GPU")
def test_norm_fold_bf16_on_gpu(monkeypatch):
    """COMBA_NORM_FOLD under bf16 autocast with every fused block kernel: the logits and every gradient as close to
    the float32 model's (no autocast) as those of the unfolded model (logits within 2x plus 1e-3, all gradients as one
    vector within 1.5x plus 1e-3, each of 64 elements or more within 2x plus 1e-3), and each block keeps two
    2-byte [B, N, C] tensors less (the norms' outputs; x^ is their Linear layers' input)."""
    import comba_vision.ops.layer_norm as ln
    from comba_vision.ops import fused_block_kernels
    from tests.ops.helpers import rel_err
    model = _micro(drop_path_rate=0.0).cuda()
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "norm" in n and p.dim() == 1:
                p.add_(0.3 * torch.randn_like(p))
    x = torch.randn(4, 3, IMG, IMG, device="cuda")
    tokens = x.shape[0] * model.patch_embed.num_patches * model.embed_dim  # the elements of one [B, N, C] tensor
    runs, kept = [], []
    for on, dt in ((False, torch.float32), (False, torch.bfloat16), (True, torch.bfloat16)):
        monkeypatch.setattr(ln, "NORM_FOLD", on)
        model.zero_grad(set_to_none=True)
        seen = {}

        def pack(t, seen=seen):
            if t.element_size() == 2 and t.numel() == tokens:
                seen.setdefault(t.untyped_storage().data_ptr(), (tuple(t.shape), str(t.dtype)))
            return t
        with fused_block_kernels(), torch.autocast("cuda", dtype=dt, enabled=dt != torch.float32), \
                torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = model(x)
        (out.float() * torch.linspace(-1, 1, out.numel(), device="cuda").view(out.shape)).sum().backward()
        runs.append([out.detach().float()] + [p.grad.clone() for p in model.parameters()])
        kept.append(sorted(seen.values()))
    # 2-byte [B, N, C] tensors kept: two a block less
    assert len(kept[2]) == len(kept[1]) - 2 * len(model.blocks), (kept[1], kept[2])
    names = ["logits"] + [n for n, _ in model.named_parameters()]
    assert rel_err(runs[2][0], runs[0][0]) <= 2 * rel_err(runs[1][0], runs[0][0]) + 1e-3  # logits
    flat = [torch.cat([g.flatten().float() for g in run[1:]]) for run in runs]  # every gradient as one vector
    assert rel_err(flat[2], flat[0]) <= 1.5 * rel_err(flat[1], flat[0]) + 1e-3
    for name, ref, plain, folded in zip(names[1:], *(run[1:] for run in runs), strict=True):
        # each tensor of 64 elements or more; the per-head ones (A_log, dt_bias, b_logit, d: 2 elements, each a sum
        # over every token that cancels) are off by 0.1-9% in either bf16 run, which says little about either: the
        # vector above holds them
        if ref.numel() >= 64:
            assert rel_err(folded, ref) <= 2 * rel_err(plain, ref) + 1e-3, name
