"""tools/ddp_scaling.py: reading TensorBoard scalars back, comparing two loss curves, and --task tracker end to end
on the CPU (2 gloo processes then 1)."""
from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
from torch.utils.tensorboard import SummaryWriter

_spec = importlib.util.spec_from_file_location(
    "ddp_scaling", Path(__file__).resolve().parents[2] / "tools" / "ddp_scaling.py")
ddp_scaling = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ddp_scaling)


def test_scalars_round_trip(tmp_path):
    with SummaryWriter(tmp_path / "tb") as w:
        for step in range(5):
            w.add_scalar("train/loss", 2.0 - 0.25 * step, step)
            w.add_scalar("train/lr", 0.1, step)
    events = ddp_scaling.scalar_events(tmp_path, "train/loss")
    assert [(s, v) for s, v, _ in events] == [(s, 2.0 - 0.25 * s) for s in range(5)]
    assert all(t0 <= t1 for (_, _, t0), (_, _, t1) in zip(events, events[1:]))  # wall times, in step order
    assert ddp_scaling.scalar_events(tmp_path, "missing") == []


def test_curve_gap():
    a = [(s, 1.0) for s in range(40)]
    b = [(s, 1.1) for s in range(40)]
    assert ddp_scaling.curve_gap(b, a) == pytest.approx(0.1)
    assert ddp_scaling.curve_gap(a, a) == 0.0
    assert ddp_scaling.moving_average([1, 2, 3, 4], 2) == [1.5, 2.5, 3.5]
    with pytest.raises(ValueError, match="share no step"):
        ddp_scaling.curve_gap(a, [(100, 1.0)])


def test_step_rate():
    # 4 steps an epoch, 0.5 s a step, 3 s between epochs (evaluation, workers); batch 64 -> 128 samples/s
    events, t = [], 0.0
    for step in range(12):
        t += 3.0 if step % 4 == 0 else 0.5
        events.append((step, 1.0, t))
    assert ddp_scaling.step_rate(events, 64, skip_steps=4) == pytest.approx(128.0)
    assert ddp_scaling.step_rate(events[:3] + events[4:], 64) == pytest.approx(128.0)  # a missing step: no gap
    with pytest.raises(ValueError, match="consecutive"):
        ddp_scaling.step_rate(events[::2], 64)


def test_make_digits_copies(tmp_path):
    out = ddp_scaling.make_digits(tmp_path / "d", size=8, copies=3)
    train = sorted((out / "train").glob("*/*.png"))
    originals = [f for f in train if "_copy" not in f.stem]
    assert len(originals) == 1797 - sum(1 for _ in (out / "val").glob("*/*.png")) and len(train) == 3 * len(originals)
    assert (originals[0].with_name(originals[0].stem + "_copy2.png")).read_bytes() == originals[0].read_bytes()
    assert ddp_scaling.make_digits(tmp_path / "d", size=8, copies=3) == out  # kept: no second set of links
    assert sum(1 for _ in (out / "train").glob("*/*.png")) == len(train)
    with pytest.raises(ValueError, match="copies"):
        ddp_scaling.make_digits(tmp_path / "d", size=8, copies=0)


def test_tracker_two_gloo_processes(tmp_path, monkeypatch):
    """--task tracker end to end on the CPU: a synthetic GOT-10k split, 2 gloo processes then 1, comba_micro."""
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)  # the CPU path is plain PyTorch
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "out"
    ddp_scaling.main(["--task", "tracker", "--make-synthetic-got10k", str(tmp_path / "got"), "--gpus", "2",
                      "--epochs", "2", "--global-batch", "4", "--samples-per-epoch", "12", "--workers", "0",
                      "--out", str(out), "--backbone", "comba_micro", "--template-size", "64",
                      "--search-size", "128", "--head-channels", "32"])
    assert (tmp_path / "got" / "train" / "list.txt").is_file()
    report = json.loads((out / "scaling.json").read_text())
    assert report["task"] == "tracker" and report["identical_weights"] is True
    assert set(report["pairs_per_s"]) == {"1", "2"} and all(v > 0 for v in report["pairs_per_s"].values())
    assert math.isfinite(report["speedup"]) and report["speedup"] > 0
    assert set(report["steady_pairs_per_s"]) == {"1", "2"} and all(v > 0 for v in report["steady_pairs_per_s"].values())
    assert math.isfinite(report["steady_speedup"]) and report["steady_speedup"] > 0
    assert math.isfinite(report["loss_curve_gap"]) and 0 <= report["loss_curve_gap"] < 0.5
    # 12 pairs / global batch 4 = 3 steps an epoch, logged every step, the same steps in both runs
    assert report["steps"] == 6 and [s for s, _ in report["loss_multi"]] == [s for s, _ in report["loss_single"]]
    assert "global batch 4" in (out / "scaling_2p.log").read_text()
    assert "global batch 4" in (out / "scaling_1p.log").read_text()


def test_task_argument_errors(tmp_path):
    with pytest.raises(SystemExit):  # no data
        ddp_scaling.main(["--task", "tracker", "--out", str(tmp_path)])
    with pytest.raises(SystemExit):  # the ImageNet task takes no --samples-per-epoch
        ddp_scaling.main(["--data-dir", str(tmp_path), "--samples-per-epoch", "64", "--out", str(tmp_path)])
    with pytest.raises(SystemExit):  # a GOT-10k generator for the ImageNet task
        ddp_scaling.main(["--make-synthetic-got10k", str(tmp_path), "--out", str(tmp_path)])
    (tmp_path / "got" / "train").mkdir(parents=True)
    with pytest.raises(SystemExit, match="without list.txt"):
        ddp_scaling.make_synthetic_got10k(tmp_path / "got")
