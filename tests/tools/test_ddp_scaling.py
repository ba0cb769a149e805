"""tools/ddp_scaling.py: reading TensorBoard scalars back and comparing two loss curves."""
from __future__ import annotations

import importlib.util
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
    assert ddp_scaling.scalars(tmp_path, "train/loss") == [(s, 2.0 - 0.25 * s) for s in range(5)]
    assert ddp_scaling.scalars(tmp_path, "missing") == []


def test_curve_gap():
    a = [(s, 1.0) for s in range(40)]
    b = [(s, 1.1) for s in range(40)]
    assert ddp_scaling.curve_gap(b, a) == pytest.approx(0.1)
    assert ddp_scaling.curve_gap(a, a) == 0.0
    assert ddp_scaling.moving_average([1, 2, 3, 4], 2) == [1.5, 2.5, 3.5]
    with pytest.raises(ValueError, match="share no step"):
        ddp_scaling.curve_gap(a, [(100, 1.0)])
