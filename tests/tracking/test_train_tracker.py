"""Tracker training and the command-line tools, end to end on a synthetic GOT-10k tree (CPU, comba_micro 64/128)."""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from timm.layers import resample_abs_pos_embed

from comba_vision.tracking import train as track_train
from comba_vision.tracking.config import (
    TrackConfig,
    load_track_config,
    parse_track_overrides,
    resolve_datasets,
)
from comba_vision.tracking.losses import TrackingLoss
from comba_vision.tracking.train import RankSampler, build_model, train_tracker
from comba_vision.train.trainer import NonFiniteLossError, atomic_save, checkpoint_dict

from .layouts import make_got10k_layout, make_lasot_layout

ROOT = Path(__file__).resolve().parents[2]
TRAIN_SCRIPT = ROOT / "tools" / "train_tracker.py"
TEST_SCRIPT = ROOT / "tools" / "test_tracker.py"
GOT10K_YAML = ROOT / "configs" / "tracking" / "got10k_comba_tiny.yaml"
LASOT_YAML = ROOT / "configs" / "tracking" / "lasot_comba_tiny.yaml"

SMALL = dict(
    backbone="comba_micro",
    template_size=64,
    search_size=128,
    head_channels=32,
    samples_per_epoch=64,
    batch_size=4,
    max_steps_per_epoch=2,
    workers=0,
    log_interval=1,
)


@pytest.fixture(scope="module")
def got10k(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("got10k")
    make_got10k_layout(root, n_seqs=6, n_frames=20, split="train", seed=0)
    make_got10k_layout(root, n_seqs=2, n_frames=10, split="val", seed=1)
    return root


def _cfg(root: Path, out: Path, **over) -> TrackConfig:
    values = dict(SMALL, datasets=[dict(name="got10k", split="train", ratio=1)], data_roots={"got10k": str(root)})
    values.update(output=str(out), experiment="run", epochs=2)
    values.update(over)
    return load_track_config(None, values)


def _summary(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def _env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.pop("TRITON_INTERPRET", None)  # the CPU path is plain PyTorch
    return env


def _tool(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _imagenet_checkpoint(path: Path, seed: int = 123) -> dict:
    """A checkpoint in tools/train_imagenet.py's format (the keys the trainer writes), via its atomic_save."""
    torch.manual_seed(seed)
    net = timm.create_model("comba_micro", num_classes=10)
    ck = checkpoint_dict(net.state_dict(), num_classes=10, step=1, best=dict(top1=10.0, epoch=1))
    atomic_save(ck, path)
    return ck


# ------------------------------------------------------------------ end to end through the two tools
def test_cli_train_then_test_on_val(got10k, tmp_path):
    """tools/train_tracker.py (shipped GOT-10k config + overrides, ImageNet backbone checkpoint), then
    tools/test_tracker.py on the val split: GOT-10k result layout and an AO in [0, 1]."""
    backbone_ck = tmp_path / "in1k.pth"
    _imagenet_checkpoint(backbone_ck)
    args = [f"--{k.replace('_', '-')}={v}" for k, v in SMALL.items()]
    cmd = [sys.executable, str(TRAIN_SCRIPT), "--config", str(GOT10K_YAML), *args, "--epochs", "2"]
    cmd += ["--data-root-got10k", str(got10k), "--backbone-checkpoint", str(backbone_ck)]
    cmd += ["--output", str(tmp_path / "out"), "--experiment", "cli"]
    res = subprocess.run(cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"backbone initialised from {backbone_ck}" in res.stderr
    out = tmp_path / "out" / "cli"
    ck = torch.load(out / "last.pth", map_location="cpu", weights_only=False)
    assert ck["epoch"] == 1 and ck["step"] == 4 and ck["kind"] == "comba_tracker"
    assert ck["config"]["data_roots"] == {"got10k": str(got10k)} and ck["config"]["lr"] == 4e-4
    assert all(torch.isfinite(v).all() for v in ck["model"].values() if v.is_floating_point())
    rows = _summary(out / "summary.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert all(math.isfinite(float(r[k])) for r in rows for k in ("loss", "focal", "giou", "l1", "pairs_per_s"))
    assert float(rows[0]["lr_backbone"]) == pytest.approx(0.1 * float(rows[0]["lr"]))
    assert not list(out.glob("*.tmp"))

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(out / "tb"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"train/loss", "train/focal", "train/giou", "train/l1", "train/lr", "train/pairs_per_s"} <= tags

    results = tmp_path / "results"
    cmd = [sys.executable, str(TEST_SCRIPT), "--checkpoint", str(out / "last.pth"), "--dataset", "got10k-val"]
    cmd += ["--data-root", str(got10k), "--results", str(results)]
    res = subprocess.run(cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    names = (got10k / "val" / "list.txt").read_text().split()
    for name in names:
        boxes = (results / name / f"{name}_001.txt").read_text().splitlines()
        assert len(boxes) == 10 and (results / name / f"{name}_time.txt").is_file()
    ao = float(re.search(r"AO (\S+)", res.stdout).group(1))
    assert 0.0 <= ao <= 1.0
    assert re.search(r"speed: [0-9.]+ fps", res.stdout)
    assert (results / "metrics_got10k-val.json").is_file()


def test_test_tool_got10k_test_zip_and_lasot(got10k, tmp_path, capsys):
    """got10k-test: results for every sequence and the server zip; lasot: results and scores (in process, an
    untrained model saved in the training checkpoint's format)."""
    import dataclasses
    import zipfile

    root = tmp_path / "data"
    make_got10k_layout(root, n_seqs=2, n_frames=5, split="test", seed=2)
    cfg = TrackConfig(**SMALL)
    torch.manual_seed(0)
    ck = tmp_path / "last.pth"
    torch.save(dict(model=build_model(cfg).state_dict(), config=dataclasses.asdict(cfg)), ck)
    tool = _tool(TEST_SCRIPT)
    rc = tool.main(
        ["--checkpoint", str(ck), "--dataset", "got10k-test", "--data-root", str(root)]
        + ["--results", str(tmp_path / "res"), "--zip", str(tmp_path / "sub.zip")]
    )
    assert rc == 0, capsys.readouterr().err
    with zipfile.ZipFile(tmp_path / "sub.zip") as z:
        members = sorted(z.namelist())
    assert members == sorted(
        f"GOT-10k_Test_{i:06d}/GOT-10k_Test_{i:06d}_{s}.txt" for i in (1, 2) for s in ("001", "time")
    )
    rc = tool.main(
        ["--checkpoint", str(tmp_path / "nope.pth"), "--dataset", "got10k-val", "--data-root", str(got10k)]
        + ["--results", str(tmp_path / "res2")]
    )
    assert rc == 2 and "tracker checkpoint not found" in capsys.readouterr().err
    # LaSOT: the sequences of a split file, pytracking's result layout, AUC / P / NP as fractions
    names = ["cat-1", "dog-3"]
    make_lasot_layout(tmp_path / "lasot", names, n_frames=6)
    (tmp_path / "seqs.txt").write_text("\n".join(names) + "\n")
    rc = tool.main(
        ["--checkpoint", str(ck), "--dataset", "lasot", "--data-root", str(tmp_path / "lasot")]
        + ["--results", str(tmp_path / "res_lasot"), "--sequences", str(tmp_path / "seqs.txt")]
    )
    out = capsys.readouterr().out
    assert rc == 0 and all((tmp_path / "res_lasot" / f"{n}.txt").is_file() for n in names)
    scores = re.search(r"AUC (\S+)  P@20px (\S+)  P_norm@0.2 (\S+)", out).groups()
    assert all(0.0 <= float(v) <= 1.0 for v in scores)


# ------------------------------------------------------------------ resume, non-finite loss
def test_resume_is_exact(got10k, tmp_path):
    """2 epochs straight == 1 epoch, then a resumed run of 1 epoch (weights, optimizer, schedule, losses)."""
    over = dict(lr_drop_epoch=1)  # the step schedule drops the lr after epoch 1: the scheduler state matters
    train_tracker(_cfg(got10k, tmp_path / "a", **over))
    train_tracker(_cfg(got10k, tmp_path / "b", stop_after_epochs=1, **over))
    assert len(_summary(tmp_path / "b" / "run" / "summary.csv")) == 1
    train_tracker(_cfg(got10k, tmp_path / "b", **over), resume=str(tmp_path / "b" / "run" / "last.pth"))
    a = torch.load(tmp_path / "a" / "run" / "last.pth", weights_only=False)
    b = torch.load(tmp_path / "b" / "run" / "last.pth", weights_only=False)
    assert a["epoch"] == b["epoch"] == 1 and a["step"] == b["step"] == 4
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), f"{k} differs after resume"
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert all(torch.equal(sa[i]["exp_avg"], sb[i]["exp_avg"]) for i in sa)
    ra, rb = _summary(tmp_path / "a" / "run" / "summary.csv"), _summary(tmp_path / "b" / "run" / "summary.csv")
    assert ra == [
        {**r, "pairs_per_s": ra[i]["pairs_per_s"], "epoch_time_s": ra[i]["epoch_time_s"]} for i, r in enumerate(rb)
    ]
    assert float(ra[1]["lr"]) == pytest.approx(0.1 * float(ra[0]["lr"]))  # step drop at lr_drop_epoch


def test_non_finite_loss_stops_and_keeps_checkpoint(got10k, tmp_path, monkeypatch):
    train_tracker(_cfg(got10k, tmp_path / "out", stop_after_epochs=1))
    last = tmp_path / "out" / "run" / "last.pth"
    digest = hashlib.sha256(last.read_bytes()).hexdigest()

    class NaNLoss(TrackingLoss):
        def forward(self, outputs, gt_boxes, gt_heatmap=None):
            total, parts = super().forward(outputs, gt_boxes, gt_heatmap)
            return total * float("nan"), parts

    monkeypatch.setattr(track_train, "TrackingLoss", NaNLoss)
    with pytest.raises(NonFiniteLossError, match="non-finite loss"):
        train_tracker(_cfg(got10k, tmp_path / "out"), resume=str(last))
    assert hashlib.sha256(last.read_bytes()).hexdigest() == digest
    assert torch.load(last, weights_only=False)["epoch"] == 0
    assert not list(last.parent.glob("*.tmp"))


# ------------------------------------------------------------------ configuration
def test_missing_root_and_config_errors(got10k, tmp_path, capsys):
    tool = _tool(TRAIN_SCRIPT)
    assert tool.main(["--config", str(GOT10K_YAML), "--output", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "'got10k'" in err and "--data-root-got10k PATH" in err
    cfg = load_track_config(str(LASOT_YAML), parse_track_overrides(["--data-root-lasot", "/x"]))
    with pytest.raises(ValueError, match="'got10k'.*--data-root-got10k"):
        resolve_datasets(cfg)
    assert tool.main(["--config", str(GOT10K_YAML), f"--data-root-got10k={tmp_path / 'nowhere'}"]) == 2
    assert "got10k" in (err := capsys.readouterr().err) and "nowhere" in err
    with pytest.raises(ValueError, match="lasott"):
        load_track_config(str(GOT10K_YAML), parse_track_overrides(["--data-root-lasott", "/x"]))
    bad = tmp_path / "bad.yaml"
    bad.write_text("backbone: comba_micro\nlearning_rate: 0.1\n")
    with pytest.raises(ValueError, match="learning_rate"):
        load_track_config(str(bad))
    assert tool.main(["--config", str(GOT10K_YAML), "--learnig-rate", "3"]) == 2
    assert "learnig_rate" in capsys.readouterr().err
    with pytest.raises(ValueError, match="ratio"):
        load_track_config(None, dict(datasets=[dict(name="got10k", ratio=0)]))
    with pytest.raises(ValueError, match="'epochs' expects int"):
        load_track_config(None, dict(epochs="ten"))
    over = parse_track_overrides(["--lr", "5e-4", "--data-root-got10k=/d/got-10k", "--backbone-kwargs", "{depth: 2}"])
    assert over == dict(lr=5e-4, data_roots={"got10k": "/d/got-10k"}, backbone_kwargs={"depth": 2})
    cfg = load_track_config(str(GOT10K_YAML), over)
    assert resolve_datasets(cfg)[0].root == "/d/got-10k"


@pytest.mark.parametrize("path", [GOT10K_YAML, LASOT_YAML], ids=["got10k", "lasot"])
def test_shipped_configs_are_ostracks_recipe(path):
    cfg = load_track_config(str(path))
    recipe = (cfg.lr, cfg.weight_decay, cfg.backbone_lr_scale, cfg.clip_grad, cfg.batch_size, cfg.samples_per_epoch)
    assert recipe == (4e-4, 1e-4, 0.1, 0.1, 32, 60000)
    assert (cfg.focal_weight, cfg.giou_weight, cfg.l1_weight) == (1.0, 2.0, 5.0)
    assert (cfg.template_size, cfg.search_size, cfg.template_factor, cfg.search_factor) == (128, 256, 2.0, 4.0)
    assert cfg.sched == "step" and cfg.lr_drop_rate == 0.1 and cfg.backbone == "comba_tiny"
    names = [(d["name"], d["split"], d["ratio"], d["root"]) for d in cfg.datasets]
    if path == GOT10K_YAML:
        assert (cfg.epochs, cfg.resolved_lr_drop_epoch) == (100, 80)
        assert names == [("got10k", "train", 1, None)]
    else:
        assert (cfg.epochs, cfg.resolved_lr_drop_epoch) == (300, 240)
        assert names == [(n, "train", 1, None) for n in ("lasot", "got10k", "trackingnet", "coco")]


# ------------------------------------------------------------------ pieces
def test_backbone_checkpoint_initialises_the_backbone(tmp_path):
    ck = _imagenet_checkpoint(tmp_path / "in1k.pth")
    cfg = TrackConfig(**dict(SMALL, backbone_checkpoint=str(tmp_path / "in1k.pth")))
    torch.manual_seed(0)
    model = build_model(cfg)
    state = model.backbone.state_dict()
    for k, v in ck["model"].items():
        if not k.startswith("head."):
            assert torch.equal(state[k], v), k
    expected = resample_abs_pos_embed(ck["model"]["pos_embed"], new_size=[8, 8], old_size=[14, 14], num_prefix_tokens=0)
    assert torch.allclose(model.search_pos_embed, expected)
    torch.manual_seed(0)
    fresh = build_model(cfg, load_backbone=False)  # e.g. on resume: the weights come from last.pth
    assert not torch.equal(fresh.backbone.patch_embed.proj.weight, ck["model"]["patch_embed.proj.weight"])


def test_vit_backbone_from_the_config_trains_and_tracks(got10k, tmp_path):
    """backbone: deit_tiny_patch16_224 (depth 1 via backbone_kwargs) through the config, an ImageNet-style ViT
    checkpoint, one short epoch, then the tracker rebuilt from last.pth runs a val sequence."""
    from comba_vision.tracking.datasets import Got10k
    from comba_vision.tracking.tracker import CombaTracker

    torch.manual_seed(7)
    vit = timm.create_model("deit_tiny_patch16_224", depth=1, num_classes=10)
    atomic_save(dict(model=vit.state_dict(), model_ema=None, best_source="model"), tmp_path / "deit.pth")
    over = parse_track_overrides(["--backbone", "deit_tiny_patch16_224", "--backbone-kwargs", "{depth: 1}"])
    cfg = _cfg(got10k, tmp_path / "out", epochs=1, backbone_checkpoint=str(tmp_path / "deit.pth"), **over)
    assert cfg.backbone == "deit_tiny_patch16_224" and cfg.experiment_name == "run"
    model = build_model(cfg)
    assert model.backbone_type == "vit" and len(model.backbone.blocks) == 1
    assert torch.equal(model.backbone.blocks[0].attn.qkv.weight, vit.blocks[0].attn.qkv.weight)
    train_tracker(cfg)
    last = tmp_path / "out" / "run" / "last.pth"
    ck = torch.load(last, map_location="cpu", weights_only=False)
    assert ck["config"]["backbone"] == "deit_tiny_patch16_224"
    assert all(torch.isfinite(v).all() for v in ck["model"].values() if v.is_floating_point())
    seq = Got10k(got10k, "val").get_sequence(0)
    boxes, _ = CombaTracker.from_checkpoint(last, device="cpu").run_sequence(seq)
    assert boxes.shape == (len(seq), 4) and np.isfinite(boxes).all()


def test_rank_sampler_splits_indices():
    parts = [list(RankSampler(10, r, 3)) for r in range(3)]
    assert parts == [[0, 3, 6], [1, 4, 7], [2, 5, 8]] and len(RankSampler(10, 1, 3)) == 3
    with pytest.raises(ValueError):
        RankSampler(10, 3, 3)


def test_torchrun_two_cpu_processes(got10k, tmp_path):
    """DDP over gloo: 2 ranks, distinct pairs, the same weights at the end."""
    args = [f"--{k.replace('_', '-')}={v}" for k, v in SMALL.items()]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29531"]
    cmd += [str(TRAIN_SCRIPT), "--config", str(GOT10K_YAML), *args, "--epochs", "1", "--batch-size", "2"]
    cmd += ["--data-root-got10k", str(got10k), "--output", str(tmp_path / "out"), "--experiment", "ddp"]
    env = dict(_env(), CUDA_VISIBLE_DEVICES="")  # both ranks on the CPU, also on a machine with one GPU
    res = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "weights identical across 2 ranks" in res.stderr + res.stdout
    assert "global batch 4" in res.stderr
    assert len(_summary(tmp_path / "out" / "ddp" / "summary.csv")) == 1
