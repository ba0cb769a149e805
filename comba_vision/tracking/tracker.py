"""Inference of the one-stream tracker: OSTrack's test-time procedure on a :class:`OneStreamTracker`.

    from comba_vision.tracking import CombaTracker
    tracker = CombaTracker.from_checkpoint("output/comba_tiny_got10k/last.pth")
    tracker.initialize(first_frame_rgb_uint8, init_box_xywh)
    box = tracker.track(next_frame)                    # xywh in frame pixels
    boxes, times = tracker.run_sequence(seq)           # a datasets.Sequence: [N, 4] boxes, [N] seconds

Per frame (OSTrack's ``OSTrack.track``): a square search region of side ``sqrt(w h) * search_factor`` around
the previous box is cropped and resized to the model's search size (``processing.crop_around``), the model
runs on (template, search), the score map is multiplied by a centred 2-D Hann window (OSTrack's
``hann2d(feat_sz, centered=True)``, a motion prior), the box is decoded at the peak (``model.decode``),
mapped back from the crop to the frame with the crop's geometry (``processing.box_from_crop``) and clipped
to the image with a minimum side of ``min_size`` pixels (OSTrack's ``clip_box(..., margin=10)``). The
template is cropped once, in :meth:`CombaTracker.initialize` (side ``sqrt(w h) * template_factor``).

The crop is kept in continuous coordinates (see ``processing``), so the mapping back is exact; OSTrack's
``sample_target`` rounds the crop corner and side to whole pixels, a sub-pixel difference.
"""

from __future__ import annotations

import math
import os
import time
from contextlib import nullcontext
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from ..cuda_graph import capture
from .datasets import Sequence, TrackingDataset, load_frame
from .model import decode
from .processing import box_from_crop, crop_around, normalize_crop

__all__ = ["CombaTracker", "GraphedForward", "clip_box", "hann1d", "hann2d", "load_tracker_checkpoint"]


def hann1d(size: int, centered: bool = True) -> torch.Tensor:
    """1-D cosine window of ``size`` samples (pytracking / OSTrack ``hann1d``; ``centered`` = symmetric)."""
    if size < 1:
        raise ValueError(f"window size must be positive, got {size}")
    if centered:
        return 0.5 * (1 - torch.cos((2 * math.pi / (size + 1)) * torch.arange(1, size + 1).double())).float()
    w = 0.5 * (1 + torch.cos((2 * math.pi / (size + 2)) * torch.arange(0, size // 2 + 1).double()))
    return torch.cat([w, w[1 : size - size // 2].flip((0,))]).float()


def hann2d(height: int, width: int, centered: bool = True) -> torch.Tensor:
    """2-D cosine window ``[1, 1, height, width]``: the outer product of two :func:`hann1d` windows."""
    return hann1d(height, centered).view(1, 1, -1, 1) * hann1d(width, centered).view(1, 1, 1, -1)


def clip_box(box_xywh: Any, height: float, width: float, margin: float = 10.0) -> np.ndarray:
    """OSTrack's ``clip_box``: keep a box inside a ``width x height`` image with sides of at least ``margin``.

    ``x1 = clip(x1, 0, W - margin)``, ``x2 = clip(x2, margin, W)``, ``w = max(margin, x2 - x1)`` (same for y),
    so the result lies in the image (when the image is at least ``margin`` pixels wide and high) and a
    box that has collapsed or left the image is brought back as a ``margin``-sized box at the border.
    """
    x1, y1, w, h = (float(v) for v in np.asarray(box_xywh, dtype=np.float64).reshape(4))
    x2, y2 = x1 + w, y1 + h
    x1 = min(max(0.0, x1), width - margin)
    x2 = min(max(margin, x2), width)
    y1 = min(max(0.0, y1), height - margin)
    y2 = min(max(margin, y2), height)
    return np.array([x1, y1, max(margin, x2 - x1), max(margin, y2 - y1)], dtype=np.float64)


def _check_frame(frame: Any) -> np.ndarray:
    image = np.asarray(frame)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 frame [H, W, 3], got shape {image.shape} dtype {image.dtype}")
    return image


def _check_box(box: Any) -> np.ndarray:
    b = np.asarray(box, dtype=np.float64).reshape(-1)
    if b.shape != (4,) or not np.isfinite(b).all() or b[2] <= 0 or b[3] <= 0:
        raise ValueError(f"the initial box must be a finite x, y, w, h with w, h > 0, got {box!r}")
    return b


class GraphedForward:
    """``model(template, search)`` replayed from a captured CUDA graph: one launch of the whole network per frame.

    At batch 1 a tracker's forward is bound by kernel launches (a Comba block issues a few dozen small
    kernels), not by arithmetic; replaying a graph removes that host cost (docs/BENCHMARKS.md has the
    figures). The inputs are copied into static buffers, the graph is captured on the first call (after two
    warm-up passes on a side stream, which also compile the Triton kernels) and captured again when the
    input shapes change. The returned dict holds the graph's static output tensors: read them before the
    next call. Weights changed in place (``load_state_dict``) are seen by the graph; parameters replaced by
    new tensors are not: build a new ``GraphedForward`` then.

    Args:
        model: a module called as ``model(template, search)`` returning a dict of tensors, on a CUDA device.
        autocast_dtype: autocast dtype inside the graph (``None``: no autocast). The autocast weight cache is
            off, as CUDA-graph capture requires.
    """

    def __init__(self, model: nn.Module, autocast_dtype: torch.dtype | None = torch.bfloat16) -> None:
        self.model = model
        self.autocast_dtype = autocast_dtype
        self.graph: torch.cuda.CUDAGraph | None = None
        self._inputs: tuple[torch.Tensor, torch.Tensor] | None = None
        self._out: dict[str, torch.Tensor] | None = None

    def _context(self):
        if self.autocast_dtype is None:
            return nullcontext()
        return torch.autocast("cuda", dtype=self.autocast_dtype, cache_enabled=False)

    def _capture(self, template: torch.Tensor, search: torch.Tensor) -> None:
        self.graph = None  # frees the previous graph's pool before capturing anew
        self._inputs = (template.clone(), search.clone())

        def forward():
            with torch.no_grad(), self._context():
                return self.model(*self._inputs)
        self.graph, self._out = capture(forward, 2, device=template.device)

    @torch.no_grad()
    def __call__(self, template: torch.Tensor, search: torch.Tensor) -> dict[str, torch.Tensor]:
        if template.device.type != "cuda" or search.device.type != "cuda":
            raise ValueError(f"CUDA graphs need CUDA tensors, got {template.device} and {search.device}")
        if self.graph is None or any(
            a.shape != b.shape or a.dtype != b.dtype or a.device != b.device
            for a, b in zip(self._inputs, (template, search))
        ):
            self._capture(template, search)
        else:
            self._inputs[0].copy_(template)
            self._inputs[1].copy_(search)
        self.graph.replay()
        return self._out


class CombaTracker:
    """Single-object tracker around a trained :class:`~comba_vision.tracking.model.OneStreamTracker`.

    Args:
        model: the network; any module called as ``model(template [1, 3, T, T], search [1, 3, S, S])`` that
            returns ``score_map [1, 1, H, W]``, ``size_map [1, 2, H, W]`` and ``offset_map [1, 2, H, W]``
            and has ``template_size`` / ``search_size`` attributes (or pass them).
        device: where the model runs (default: CUDA when available, else the CPU); the model is moved there
            and put in eval mode.
        template_factor / search_factor: crop sides relative to ``sqrt(w h)`` of the box (OSTrack: 2 and 4).
        hann: multiply the score map by a centred Hann window before taking its peak (OSTrack does).
        amp: autocast on CUDA (never on the CPU), to ``amp_dtype`` (bfloat16 by default).
        cuda_graph: run the network as a captured CUDA graph (:class:`GraphedForward`), CUDA only: the same
            boxes, several times the frames per second at batch 1, where the forward is launch-bound.
        min_size: smallest box side after clipping, in pixels (OSTrack's ``clip_box`` margin, 10).
        template_size / search_size: override the sizes read from the model.

    Attributes after :meth:`track`: ``state`` (the current xywh box), ``last_score`` (the raw score map's
    value at the chosen cell), ``last_crop_box`` (the search crop's xywh box in the frame).
    """

    def __init__(
        self,
        model: nn.Module,
        device: str | torch.device | None = None,
        template_factor: float = 2.0,
        search_factor: float = 4.0,
        hann: bool = True,
        amp: bool = True,
        min_size: float = 10.0,
        template_size: int | None = None,
        search_size: int | None = None,
        amp_dtype: torch.dtype = torch.bfloat16,
        cuda_graph: bool = False,
    ) -> None:
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.template_size = int(template_size or getattr(model, "template_size", 0))
        self.search_size = int(search_size or getattr(model, "search_size", 0))
        if self.template_size <= 0 or self.search_size <= 0:
            raise ValueError("template_size / search_size: the model has no such attributes; pass them")
        if not (template_factor > 0 and search_factor > 0):
            raise ValueError(f"crop factors must be positive, got {template_factor} and {search_factor}")
        if not min_size > 0:
            raise ValueError(f"min_size must be positive (a box needs a size to crop around), got {min_size}")
        self.template_factor, self.search_factor = float(template_factor), float(search_factor)
        self.hann = bool(hann)
        self.amp = bool(amp) and self.device.type == "cuda"
        if amp_dtype not in (torch.bfloat16, torch.float16):
            raise ValueError(f"amp_dtype must be torch.bfloat16 or torch.float16, got {amp_dtype}")
        self.amp_dtype = amp_dtype
        if cuda_graph and self.device.type != "cuda":
            raise ValueError(f"cuda_graph=True needs a CUDA device, the tracker runs on {self.device}")
        self._graphed = GraphedForward(self.model, amp_dtype if self.amp else None) if cuda_graph else None
        self.min_size = float(min_size)
        self.state: np.ndarray | None = None
        self.last_score: float | None = None
        self.last_crop_box: np.ndarray | None = None
        self._template: torch.Tensor | None = None
        self._windows: dict[tuple[int, int], torch.Tensor] = {}

    # ------------------------------------------------------------------ construction from a checkpoint
    @classmethod
    def from_checkpoint(
        cls, path: str | os.PathLike, device: str | torch.device | None = None, **kwargs: Any
    ) -> CombaTracker:
        """A tracker from a ``tools/train_tracker.py`` checkpoint (``last.pth``): the model is rebuilt from the
        stored config and its weights loaded; the crop factors default to the training ones."""
        model, cfg = load_tracker_checkpoint(path)
        kwargs.setdefault("template_factor", cfg.get("template_factor", 2.0))
        kwargs.setdefault("search_factor", cfg.get("search_factor", 4.0))
        return cls(model, device=device, **kwargs)

    # ------------------------------------------------------------------ helpers
    def _autocast(self):
        return torch.autocast("cuda", dtype=self.amp_dtype) if self.amp else nullcontext()

    def _window(self, height: int, width: int) -> torch.Tensor:
        key = (height, width)
        if key not in self._windows:
            self._windows[key] = hann2d(height, width).to(self.device)
        return self._windows[key]

    def _to_input(self, crop: np.ndarray) -> torch.Tensor:
        return normalize_crop(crop).unsqueeze(0).to(self.device)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    # ------------------------------------------------------------------ tracking
    @torch.no_grad()
    def initialize(self, frame: Any, box_xywh: Any) -> None:
        """Crops the template around ``box_xywh`` in the first frame (RGB uint8 ``[H, W, 3]``) and stores it."""
        image = _check_frame(frame)
        box = _check_box(box_xywh)
        crop, _, _ = crop_around(image, box, self.template_factor, self.template_size)
        self._template = self._to_input(crop)
        self.state = box.copy()
        self.last_score, self.last_crop_box = None, None

    @torch.no_grad()
    def track(self, frame: Any) -> np.ndarray:
        """The target's box (xywh, frame pixels, float64) in the next frame; also the new ``state``."""
        if self._template is None or self.state is None:
            raise RuntimeError("call initialize(first_frame, box) before track()")
        image = _check_frame(frame)
        height, width = image.shape[:2]
        crop, _, crop_box = crop_around(image, self.state, self.search_factor, self.search_size)
        if self._graphed is not None:
            out = self._graphed(self._template, self._to_input(crop))
        else:
            with self._autocast():
                out = self.model(self._template, self._to_input(crop))
        score = out["score_map"].float()
        raw = score
        if self.hann:
            score = score * self._window(*score.shape[-2:])
        box_n = decode(score, out["size_map"].float(), out["offset_map"].float())[0]  # (cx, cy, w, h) / S
        cx, cy, w, h = (box_n.double().cpu().numpy() * self.search_size).tolist()
        box = box_from_crop(np.array([cx - 0.5 * w, cy - 0.5 * h, w, h]), crop_box, self.search_size)
        peak = int(score.flatten(1).argmax(dim=1)[0])
        self.last_score = float(raw.flatten(1)[0, peak])
        self.last_crop_box = crop_box
        if np.isfinite(box).all():  # a non-finite prediction keeps the previous box
            self.state = clip_box(box, height, width, self.min_size)
        return self.state.copy()

    def run_sequence(
        self, seq: Sequence | int | str, dataset: TrackingDataset | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Tracks a whole sequence from its first box; returns ``(boxes [N, 4] xywh, times [N] seconds)``.

        ``seq`` is a :class:`~comba_vision.tracking.datasets.Sequence`, or an index / name in ``dataset``.
        Row 0 is the initial box itself (what GOT-10k and LaSOT result files hold). Times cover initialise /
        track (frame decoding excluded, as the GOT-10k toolkit times them; CUDA synchronised).
        """
        if not isinstance(seq, Sequence):
            if dataset is None:
                raise ValueError(f"sequence {seq!r} given by index / name: pass the dataset it belongs to")
            seq = dataset.get_sequence(seq)
        n = len(seq.frames)
        if n == 0:
            raise ValueError(f"sequence {seq.name} has no frames")
        boxes = np.zeros((n, 4), dtype=np.float64)
        times = np.zeros(n, dtype=np.float64)
        for i in range(n):
            frame = load_frame(seq, i)
            start = time.perf_counter()
            if i == 0:
                self.initialize(frame, seq.boxes[0])
                boxes[0] = seq.boxes[0]
            else:
                boxes[i] = self.track(frame)
            self._sync()
            times[i] = time.perf_counter() - start
        return boxes, times


def load_tracker_checkpoint(path: str | os.PathLike) -> tuple[nn.Module, dict[str, Any]]:
    """``(OneStreamTracker with the checkpoint's weights, the training config as a dict)`` from a
    ``tools/train_tracker.py`` checkpoint. The backbone checkpoint of the run is not needed (not reloaded).
    The checkpoint holds NumPy RNG states, so it is read with ``weights_only=False``: load only files you trust.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a tracker training checkpoint (no ``model`` / ``config``).
    """
    from .model import OneStreamTracker

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"tracker checkpoint not found: {path}")
    ck = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(ck, dict) or not isinstance(ck.get("model"), dict) or not isinstance(ck.get("config"), dict):
        raise ValueError(
            f"{path} is not a tools/train_tracker.py checkpoint (a dict with 'model' and 'config'); an ImageNet "
            "checkpoint goes to --backbone-checkpoint of tools/train_tracker.py instead"
        )
    cfg = ck["config"]
    model = OneStreamTracker(
        cfg.get("backbone", "comba_tiny"),
        template_size=int(cfg.get("template_size", 128)),
        search_size=int(cfg.get("search_size", 256)),
        head_channels=int(cfg.get("head_channels", 256)),
        token_type_embed=bool(cfg.get("token_type_embed", True)),
        **dict(cfg.get("backbone_kwargs") or {}),
    )
    model.load_state_dict(ck["model"], strict=True)
    return model.eval(), cfg
