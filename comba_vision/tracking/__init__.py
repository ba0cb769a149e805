"""Single-object tracking with Comba backbones (one-stream, OSTrack-style).

``datasets`` reads GOT-10k, LaSOT, TrackingNet and COCO in their official on-disk layouts; ``processing`` makes
the template / search crops and the training pairs; ``model`` is the one-stream network and ``losses`` its
training losses; ``config`` and ``train`` train it (``tools/train_tracker.py``); ``tracker`` runs it on videos
and ``evaluation`` scores the results (``tools/test_tracker.py``).

    from comba_vision.tracking import CombaTracker, load_track_config, train_tracker
    tracker = CombaTracker.from_checkpoint("output/comba_tiny_got10k/last.pth")
    boxes, times = tracker.run_sequence(seq)

The names below are imported from their modules on first use, so importing one module (e.g.
``comba_vision.tracking.datasets``) does not load the others.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "datasets": (
        "Coco",
        "Got10k",
        "Lasot",
        "Sequence",
        "TrackingDataset",
        "TrackingNet",
        "build_dataset",
        "load_frame",
    ),
    "processing": (
        "TrackingPairDataset",
        "box_from_crop",
        "box_to_crop",
        "crop_around",
        "normalize_crop",
    ),
    "model": ("OneStreamTracker", "decode", "param_groups"),
    "losses": ("TrackingLoss", "gaussian_heatmap"),
    "evaluation": (
        "evaluate_got10k",
        "evaluate_lasot",
        "plot_curves",
        "read_results",
        "write_results",
        "zip_got10k_submission",
    ),
    "tracker": ("CombaTracker", "GraphedForward", "clip_box", "hann2d", "load_tracker_checkpoint"),
    "config": ("TrackConfig", "load_track_config", "parse_track_overrides", "resolve_datasets"),
    "train": ("NonFiniteLossError", "build_model", "train_tracker"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
