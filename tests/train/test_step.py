"""The training update with its NaN guard on the device, and the CUDA-graph training step (comba_vision.train.step).

CPU: a fused optimizer handed found_inf leaves the weights, moments and step count untouched; the trainer
refuses cuda_graph where it cannot run. GPU: the graphed step updates the weights as the eager guarded step
does, its capture changes nothing, a non-finite batch is skipped inside the graph, and a graphed ImageNet
run resumes exactly.
"""
from __future__ import annotations

import copy

import pytest
import timm
import torch
import torch.nn as nn
import torch.nn.functional as F

from comba_vision.ops import fused_block_kernels
from comba_vision.train import trainer
from comba_vision.train.config import load_config
from comba_vision.train.data import write_digits_imagefolder
from comba_vision.train.step import (
    GraphedTrainStep,
    NonFiniteLossError,
    check_finite_count,
    fused_optimizer_kwargs,
    guarded_update,
    guards_on_device,
    nonfinite_loss,
)

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _adamw(model, device, graph=False):
    return torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.05,
                             **fused_optimizer_kwargs("adamw", torch.device(device), graph))


def _snapshot(model, opt):
    return ([p.detach().clone() for p in model.parameters()],
            {k: v.clone() for st in opt.state.values() for k, v in st.items()} if opt.state else {})


def test_fused_kwargs_and_guard_choice():
    assert fused_optimizer_kwargs("adamw", torch.device("cpu")) == dict(fused=True)
    assert fused_optimizer_kwargs("AdamW", torch.device("cuda"), cuda_graph=True) == dict(fused=True, capturable=True)
    assert fused_optimizer_kwargs("lamb", torch.device("cpu")) == {}
    m = nn.Linear(3, 2)
    assert guards_on_device(_adamw(m, "cpu"))
    assert not guards_on_device(torch.optim.AdamW(m.parameters(), foreach=True))
    assert not guards_on_device(_adamw(m, "cpu"), scaler=object())


@pytest.mark.parametrize("poison", ["loss", "grad"])
def test_non_finite_update_is_skipped_on_the_device(poison):
    """A finite update moves the weights as plain AdamW does; a flagged one (non-finite loss seen in a
    micro-batch, or a non-finite gradient) leaves weights, moments and step count bit-identical."""
    torch.manual_seed(0)
    model = nn.Linear(5, 4)
    ref = copy.deepcopy(model)
    opt, ref_opt = _adamw(model, "cpu"), torch.optim.AdamW(ref.parameters(), lr=1e-2, weight_decay=0.05)
    x = torch.randn(8, 5)
    for m in (model, ref):
        F.mse_loss(m(x), torch.zeros(8, 4)).backward()
    norm, flag = guarded_update(model, opt, None, torch.zeros(()))
    ref_norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in ref.parameters()]))
    ref_opt.step()
    assert flag.item() == 0 and abs(norm.item() - ref_norm.item()) <= 1e-6 * ref_norm.item()
    for p, q in zip(model.parameters(), ref.parameters()):
        assert (p - q).abs().max().item() <= 1e-6 * q.abs().max().item()

    opt.zero_grad()
    F.mse_loss(model(x), torch.ones(8, 4)).backward()
    bad = torch.zeros(())
    if poison == "grad":
        model.weight.grad[0, 0] = float("nan")
    else:
        bad = nonfinite_loss(torch.tensor(float("inf")))
    before, state = _snapshot(model, opt)
    norm, flag = guarded_update(model, opt, 1.0, bad)
    assert flag.item() == 1
    after, state_after = _snapshot(model, opt)
    assert all(torch.equal(a, b) for a, b in zip(before, after))
    assert all(torch.equal(state[k], state_after[k]) for k in state)
    assert opt.state[model.weight]["step"].item() == 1


def test_check_finite_count_names_the_updates():
    check_finite_count(torch.zeros(()), 0, 50, "epoch 1")
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss or gradient norm in 2 of the updates 51\.\.100"):
        check_finite_count(torch.tensor(2.0), 50, 100, "epoch 2")


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return write_digits_imagefolder(tmp_path_factory.mktemp("digits") / "tree")


def _cfg(digits, out, **over):
    base = dict(dataset="", data_dir=str(digits), model="comba_micro",
                model_kwargs=dict(img_size=32, patch_size=8, depth=2), epochs=2, batch_size=32,
                max_steps_per_epoch=4, workers=0, warmup_epochs=1, lr=2e-3, mixup=0.8, cutmix=1.0, aa=None,
                reprob=0.0, hflip=0.5, color_jitter=0.0, aug_repeats=0, model_ema=True, model_ema_decay=0.9,
                output=str(out), experiment="run", log_interval=2, crop_pct=1.0, drop_path=0.1)
    base.update(over)
    return load_config(None, base)


def test_cuda_graph_refused_where_it_cannot_run(digits, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("checks the CPU refusal")
    with pytest.raises(ValueError, match="cuda_graph needs a CUDA device"):
        trainer.train(_cfg(digits, tmp_path, cuda_graph=True))
    with pytest.raises(ValueError, match=r"accum_steps 1 \(got 2\).*opt one of.*grad_checkpointing"):
        trainer.check_cuda_graph(_cfg(digits, tmp_path, cuda_graph=True, accum_steps=2, opt="lamb",
                                      grad_checkpointing=True), torch.device("cuda"), 1, True)
    with pytest.raises(ValueError, match="mixer_recompute"):
        trainer.check_cuda_graph(_cfg(digits, tmp_path, cuda_graph=True, model_kwargs=dict(mixer_recompute=True)),
                                 torch.device("cuda"), 1, True)
    trainer.check_cuda_graph(_cfg(digits, tmp_path, cuda_graph=True, opt="AdamW"), torch.device("cuda"), 1, True)


# ------------------------------------------------------------------------------------------------ GPU
def _model(seed=0):
    torch.manual_seed(seed)
    return timm.create_model("comba_micro", img_size=32, patch_size=8, depth=2, num_classes=10).cuda().train()


@pytest.mark.gpu
@cuda
def test_graphed_step_matches_eager_guarded_steps():
    """Four different batches through the graph and through the eager guarded update (bf16 autocast, fused
    capturable AdamW, drop path off so the two draw no random numbers): the same weights and moments; the
    capture itself changes nothing; a NaN batch is skipped inside the graph."""
    eager, graphed = _model(), _model()
    opt_e, opt_g = _adamw(eager, "cuda", True), _adamw(graphed, "cuda", True)
    xs = torch.randn(5, 16, 3, 32, 32, device="cuda")
    ys = torch.randint(0, 10, (5, 16), device="cuda")
    crit = nn.CrossEntropyLoss()
    before, _ = _snapshot(graphed, opt_g)
    step = GraphedTrainStep(graphed, crit, opt_g, xs[0], ys[0], clip_grad=1.0)
    after, _ = _snapshot(graphed, opt_g)
    assert all(torch.equal(a, b) for a, b in zip(before, after)), "the capture changed the weights"
    assert all(v.abs().max().item() == 0 for st in opt_g.state.values() for v in st.values())
    for i in range(4):
        for g in (*opt_e.param_groups, *opt_g.param_groups):
            g["lr"] = 1e-2 / (i + 1)  # as a scheduler would: the graph reads the groups' current rates
        with torch.autocast("cuda", dtype=torch.bfloat16), fused_block_kernels():  # the graph's kernels
            loss_e = crit(eager(xs[i]), ys[i])
        loss_e.backward()
        norm_e, _ = guarded_update(eager, opt_e, 1.0, nonfinite_loss(loss_e))
        opt_e.zero_grad(set_to_none=True)
        loss_g, norm_g, flag = step(xs[i], ys[i])
        assert flag.item() == 0
        assert abs(loss_g.item() - loss_e.item()) <= 1e-3 * abs(loss_e.item())
        assert abs(norm_g.item() - norm_e.item()) <= 1e-2 * norm_e.item()
    for (n, p), q in zip(eager.named_parameters(), graphed.parameters()):
        err = (p - q).norm() / p.norm().clamp_min(1e-12)
        assert err.item() <= 1e-3, f"{n}: {err.item():.2e}"
    for p, q in zip(eager.parameters(), graphed.parameters()):
        sp, sq = opt_e.state[p], opt_g.state[q]
        assert sp["step"].item() == sq["step"].item() == 4
        assert ((sp["exp_avg"] - sq["exp_avg"]).norm() <= 2e-2 * sp["exp_avg"].norm() + 1e-9).item()

    before, state = _snapshot(graphed, opt_g)
    x_bad = xs[4].clone()
    x_bad[0, 0, 0, 0] = float("nan")
    _, _, flag = step(x_bad, ys[4])
    assert flag.item() == 1
    after, state_after = _snapshot(graphed, opt_g)
    assert all(torch.equal(a, b) for a, b in zip(before, after))
    assert all(torch.equal(state[k], state_after[k]) for k in state)
    with pytest.raises(ValueError, match="captured for batches"):
        step(xs[0, :8], ys[0, :8])


@pytest.mark.gpu
@cuda
def test_graphed_training_resumes_exactly_and_learns(digits, tmp_path):
    """tools/train_imagenet.py's loop with cuda_graph: a run stopped after one epoch and resumed (a new
    capture) ends with the same weights, EMA and optimizer state as the uninterrupted run (drop path, mixup
    and cutmix on); the loss falls."""
    trainer.train(_cfg(digits, tmp_path / "a", cuda_graph=True))
    trainer.train(_cfg(digits, tmp_path / "b", cuda_graph=True, stop_after_epochs=1))
    trainer.train(_cfg(digits, tmp_path / "b", cuda_graph=True), resume=str(tmp_path / "b" / "run" / "last.pth"))
    a = torch.load(tmp_path / "a" / "run" / "last.pth", weights_only=False)
    b = torch.load(tmp_path / "b" / "run" / "last.pth", weights_only=False)
    assert a["step"] == b["step"] == 8
    for part in ("model", "model_ema"):
        for k, v in a[part].items():
            assert torch.equal(v, b[part][k]), f"{part}.{k} differs after resume"
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert all(torch.equal(sa[i]["exp_avg"], sb[i]["exp_avg"]) for i in sa)

    metrics = trainer.train(_cfg(digits, tmp_path / "c", cuda_graph=True, epochs=6, max_steps_per_epoch=None,
                                 mixup=0.0, cutmix=0.0, drop_path=0.0, lr=3e-3))
    assert metrics["val_top1"] >= 60.0, metrics


@pytest.mark.gpu
@cuda
def test_graphed_training_stops_on_nan(digits, tmp_path, nan_models):
    with pytest.raises(NonFiniteLossError, match="updates 1..2"):
        trainer.train(_cfg(digits, tmp_path, cuda_graph=True))
    assert not (tmp_path / "run" / "last.pth").exists()


def test_setup_distributed_names_a_missing_gpu(monkeypatch):
    """More processes on a node than visible GPUs: an error that says so, not CUDA's 'invalid device ordinal'."""
    from comba_vision.train.trainer import setup_distributed
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setenv("LOCAL_RANK", "1")
    with pytest.raises(RuntimeError, match="LOCAL_RANK 1 but only 1 CUDA device"):
        setup_distributed()
