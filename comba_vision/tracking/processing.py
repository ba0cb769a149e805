"""Template / search crops and the training-pair dataset of a one-stream (OSTrack-style) tracker.

Crops follow OSTrack's ``sample_target``: a square of side ``sqrt(w * h) * context_factor`` centred on the box
centre, resized to ``out_size``. Differences, chosen here:

* the crop box is kept in continuous coordinates (no rounding of its corner or side), so the box centre lands
  exactly on the crop centre and :func:`box_to_crop` / :func:`box_from_crop` are exact inverses;
* resampling is ``torch.nn.functional.grid_sample`` (bilinear, ``align_corners=False``) for training and
  inference alike: output pixel ``j`` samples the frame at ``x0 + (j + 0.5) * side / out_size``; inside the
  frame the edge pixels are repeated up to the border (no dark fringe), and an output pixel whose sample point
  lies outside the frame is **zero** (black, as OSTrack's ``copyMakeBorder`` padding). Like OSTrack's
  ``cv2.resize(INTER_LINEAR)`` there is no anti-aliasing when the crop is shrunk.

Boxes are ``x, y, w, h`` in continuous pixel coordinates (pixel ``i`` covers ``[i, i + 1)``).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence as SequenceABC
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from .datasets import Sequence, TrackingDataset, load_frame

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "PairChoice",
    "PairSampler",
    "TrackingPairDataset",
    "box_from_crop",
    "box_to_crop",
    "crop_around",
    "crop_box_around",
    "jitter_box",
    "normalize_crop",
    "resample_crop",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# ---------------------------------------------------------------------------------------------- geometry
def _as_box(box: Any) -> np.ndarray:
    b = np.asarray(box, dtype=np.float64).reshape(-1)
    if b.shape != (4,) or not np.isfinite(b).all():
        raise ValueError(f"expected a finite x,y,w,h box, got {box!r}")
    return b


def jitter_box(box_xywh: Any, center_jitter: float, scale_jitter: float, rng: np.random.Generator) -> np.ndarray:
    """OSTrack's ``get_jittered_box``: ``w, h *= exp(randn * scale_jitter)`` (independently), then the centre
    moves by ``center_jitter * sqrt(w' * h') * uniform(-0.5, 0.5)`` in x and y."""
    x, y, w, h = _as_box(box_xywh)
    cx, cy = x + 0.5 * w, y + 0.5 * h
    if scale_jitter:
        w, h = np.array([w, h]) * np.exp(rng.standard_normal(2) * scale_jitter)
    if center_jitter:
        off = center_jitter * math.sqrt(w * h) * (rng.random(2) - 0.5)
        cx, cy = cx + off[0], cy + off[1]
    return np.array([cx - 0.5 * w, cy - 0.5 * h, w, h], dtype=np.float64)


def crop_box_around(box_xywh: Any, context_factor: float) -> np.ndarray:
    """The square crop box (xywh, frame coordinates) of side ``sqrt(w * h) * context_factor`` centred on the box."""
    x, y, w, h = _as_box(box_xywh)
    if w <= 0 or h <= 0:
        raise ValueError(f"cannot crop around a box with non-positive size: {list(map(float, (x, y, w, h)))}")
    side = math.sqrt(w * h) * context_factor
    cx, cy = x + 0.5 * w, y + 0.5 * h
    return np.array([cx - 0.5 * side, cy - 0.5 * side, side, side], dtype=np.float64)


def _crop_scale(crop_box_xywh: Any, out_size: int) -> tuple[float, float, float, float]:
    x0, y0, cw, ch = _as_box(crop_box_xywh)
    if cw <= 0 or ch <= 0:
        raise ValueError(f"crop box must have a positive size, got {crop_box_xywh!r}")
    return x0, y0, out_size / cw, out_size / ch


def box_to_crop(box_xywh: Any, crop_box_xywh: Any, out_size: int) -> Any:
    """Map box(es) ``[..., 4]`` from frame to crop pixel coordinates (numpy -> float64 numpy, tensor -> tensor)."""
    x0, y0, sx, sy = _crop_scale(crop_box_xywh, out_size)
    if isinstance(box_xywh, torch.Tensor):
        off, scale = box_xywh.new_tensor([x0, y0, 0.0, 0.0]), box_xywh.new_tensor([sx, sy, sx, sy])
        return (box_xywh - off) * scale
    b = np.asarray(box_xywh, dtype=np.float64)
    return (b - np.array([x0, y0, 0.0, 0.0])) * np.array([sx, sy, sx, sy])


def box_from_crop(box_in_crop_xywh: Any, crop_box_xywh: Any, out_size: int) -> Any:
    """Inverse of :func:`box_to_crop`: crop pixel coordinates back to frame coordinates."""
    x0, y0, sx, sy = _crop_scale(crop_box_xywh, out_size)
    if isinstance(box_in_crop_xywh, torch.Tensor):
        b = box_in_crop_xywh
        off, scale = b.new_tensor([x0, y0, 0.0, 0.0]), b.new_tensor([sx, sy, sx, sy])
        return b / scale + off
    b = np.asarray(box_in_crop_xywh, dtype=np.float64)
    return b / np.array([sx, sy, sx, sy]) + np.array([x0, y0, 0.0, 0.0])


# ---------------------------------------------------------------------------------------------- resampling
def resample_crop(image: np.ndarray, crop_box_xywh: Any, out_size: int) -> np.ndarray:
    """Bilinear ``grid_sample`` of ``crop_box_xywh`` of ``image`` (HxWx3 uint8) to ``[out_size, out_size, 3]``
    uint8; sample points outside the frame give 0."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 image, got shape {image.shape} dtype {image.dtype}")
    height, width = image.shape[:2]
    x0, y0, cw, ch = _as_box(crop_box_xywh)
    j = np.arange(out_size, dtype=np.float64) + 0.5
    us, vs = x0 + j * (cw / out_size), y0 + j * (ch / out_size)  # sample points, frame coordinates
    in_x, in_y = (us >= 0) & (us < width), (vs >= 0) & (vs < height)
    out = np.zeros((out_size, out_size, 3), dtype=np.uint8)
    if not in_x.any() or not in_y.any():
        return out
    # Only the pixels that inside sample points interpolate from: index space p = u - 0.5, pixels floor(p), +1.
    ix0 = max(0, math.floor(us[in_x].min() - 0.5))
    ix1 = min(width - 1, math.floor(us[in_x].max() - 0.5) + 1)
    iy0 = max(0, math.floor(vs[in_y].min() - 0.5))
    iy1 = min(height - 1, math.floor(vs[in_y].max() - 0.5) + 1)
    region = torch.from_numpy(np.array(image[iy0 : iy1 + 1, ix0 : ix1 + 1]))  # a writable copy
    region = region.permute(2, 0, 1).unsqueeze(0).float()
    rh, rw = region.shape[-2:]
    gx = torch.from_numpy(2.0 * (us - ix0) / rw - 1.0).float()
    gy = torch.from_numpy(2.0 * (vs - iy0) / rh - 1.0).float()
    grid = torch.stack(torch.meshgrid(gx, gy, indexing="xy"), dim=-1).unsqueeze(0)  # [1, out, out, 2] (x, y)
    sampled = F.grid_sample(region, grid, mode="bilinear", padding_mode="border", align_corners=False)
    # The sample points are increasing, so the inside ones are one run of rows by one run of columns.
    (r0, r1), (c0, c1) = (np.flatnonzero(m)[[0, -1]] for m in (in_y, in_x))
    inside = sampled[0, :, r0 : r1 + 1, c0 : c1 + 1].round_().clamp_(0, 255).to(torch.uint8)
    out[r0 : r1 + 1, c0 : c1 + 1] = inside.permute(1, 2, 0).numpy()
    return out


def crop_around(
    image: np.ndarray,
    box_xywh: Any,
    context_factor: float,
    out_size: int,
    center_jitter: float | None = None,
    scale_jitter: float | None = None,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, float, np.ndarray]:
    """Square crop of side ``sqrt(w * h) * context_factor`` around the (optionally jittered) box, resized.

    Returns ``(crop uint8 [out, out, 3], resize_factor = out_size / side, crop_box_xywh in frame coords)``.
    Jitter (see :func:`jitter_box`) moves the crop, not the object: map the true box with :func:`box_to_crop`.
    """
    box = _as_box(box_xywh)
    if center_jitter or scale_jitter:
        if rng is None:
            raise ValueError("jitter needs an rng (numpy.random.Generator)")
        box = jitter_box(box, center_jitter or 0.0, scale_jitter or 0.0, rng)
    crop_box = crop_box_around(box, context_factor)
    return resample_crop(image, crop_box, out_size), out_size / float(crop_box[2]), crop_box


def normalize_crop(crop: torch.Tensor | np.ndarray) -> torch.Tensor:
    """uint8 HxWx3 (or float [3, H, W] in [0, 1]) -> ImageNet-normalised float32 [3, H, W]."""
    if isinstance(crop, np.ndarray):
        crop = torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1).float().div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN, dtype=crop.dtype, device=crop.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=crop.dtype, device=crop.device).view(3, 1, 1)
    return (crop - mean) / std


# ---------------------------------------------------------------------------------------------- pair sampling
@dataclass(frozen=True)
class PairChoice:
    """Which frames a training pair uses: dataset index, sequence index in it, template and search frames."""

    dataset: int
    sequence: int
    template: int
    search: int


class PairSampler:
    """Chooses (dataset, sequence, template frame, search frame) for training pairs.

    A dataset is drawn with probability proportional to its ratio, a sequence uniformly in it, a template
    uniformly among the sequence's valid frames (visible, positive box size) that have a later valid frame
    within ``max_gap``, and a search frame uniformly among the valid frames ``f`` with
    ``0 < f - template <= max_gap`` (a sequence without such a pair, e.g. one COCO image, pairs a frame with
    itself). A sequence without a valid frame is skipped
    (another sequence of the same dataset is drawn, as OSTrack does); per-sequence validity is cached, and the
    last ``cache_size`` parsed sequences are kept (:meth:`sequence`), so that a pair does not re-read its
    sequence's annotation files (each DataLoader worker holds its own copy of the cache).
    """

    def __init__(
        self,
        datasets: SequenceABC[tuple[TrackingDataset, float]],
        max_gap: int = 200,
        max_attempts: int = 100,
        cache_size: int = 256,
    ) -> None:
        if not datasets:
            raise ValueError("PairSampler needs at least one (dataset, ratio) pair")
        for ds, ratio in datasets:
            if not getattr(ds, "fully_annotated", True):
                raise ValueError(f"{ds!r} is not annotated on every frame (GOT-10k test?): it cannot give pairs")
            if len(ds) == 0:
                raise ValueError(f"{ds!r} has no sequences")
            if not ratio > 0:
                raise ValueError(f"dataset ratios must be positive, got {ratio} for {ds!r}")
        if max_gap < 0:
            raise ValueError(f"max_gap must be >= 0, got {max_gap}")
        self.datasets = [ds for ds, _ in datasets]
        ratios = np.array([float(r) for _, r in datasets])
        self.probs = ratios / ratios.sum()
        self.max_gap = int(max_gap)
        self.max_attempts = int(max_attempts)
        self._valid: dict[tuple[int, int], np.ndarray] = {}
        self.cache_size = max(int(cache_size), 0)
        self._sequences: OrderedDict[tuple[int, int], Sequence] = OrderedDict()

    def sequence(self, dataset: int, sequence: int) -> Sequence:
        """``datasets[dataset].get_sequence(sequence)``, from a least-recently-used cache of parsed sequences."""
        key = (dataset, sequence)
        seq = self._sequences.get(key)
        if seq is not None:
            self._sequences.move_to_end(key)
            return seq
        seq = self.datasets[dataset].get_sequence(sequence)
        if self.cache_size:
            self._sequences[key] = seq
            if len(self._sequences) > self.cache_size:
                self._sequences.popitem(last=False)
        return seq

    def valid_frames(self, dataset: int, sequence: int) -> np.ndarray:
        """Indices of the frames usable as template or search (visible, w > 0, h > 0)."""
        key = (dataset, sequence)
        valid = self._valid.get(key)
        if valid is None:
            seq = self.sequence(dataset, sequence)
            ok = seq.visible & (seq.boxes[:, 2] > 0) & (seq.boxes[:, 3] > 0)
            valid = np.flatnonzero(ok)
            if len(seq) > 1:  # one-frame sequences (COCO's 860k objects) are cheap to redo: not cached
                self._valid[key] = valid
        return valid

    def sample(self, rng: np.random.Generator) -> PairChoice:
        d = int(rng.choice(len(self.datasets), p=self.probs))
        for _ in range(self.max_attempts):  # redraw the sequence within the same dataset: ratios are kept
            s = int(rng.integers(len(self.datasets[d])))
            valid = self.valid_frames(d, s)
            if valid.size == 0:
                continue
            # the search frame comes strictly after the template, within max_gap (OSTrack's causal sampling);
            # a sequence with no such pair (one frame: COCO) pairs a frame with itself
            has_next = np.zeros(valid.size, dtype=bool)
            has_next[:-1] = np.diff(valid) <= self.max_gap
            if has_next.any():
                starts = valid[has_next]
                t = int(starts[rng.integers(starts.size)])
                window = valid[(valid > t) & (valid <= t + self.max_gap)]
                return PairChoice(d, s, t, int(window[rng.integers(window.size)]))
            t = int(valid[rng.integers(valid.size)])
            return PairChoice(d, s, t, t)
        raise RuntimeError(
            f"no sequence with a visible frame found in {self.max_attempts} draws from {self.datasets[d]!r}"
        )


class TrackingPairDataset(Dataset):
    """Training pairs for a one-stream tracker: a template crop and a search crop of one sequence.

    Item ``index`` is drawn with ``numpy.random.default_rng(seed + epoch * samples_per_epoch + index)`` (epoch 0
    until :meth:`set_epoch` is called), so it is the same in any DataLoader worker. Returns a dict:
    ``template`` float32 [3, T, T], ``search`` float32 [3, S, S] (ImageNet-normalised), ``template_box`` /
    ``search_box`` float32 [4] = (x1, y1, w, h) / crop size, clipped to the crop, plus ``dataset`` (int),
    ``sequence`` (name), ``template_index`` and ``search_index`` (frame indices).

    Augmentation (OSTrack defaults): search crop jittered (centre 3, scale 0.25), template not; grayscale on
    both crops with prob 0.05; brightness ``* uniform(0.8, 1.2)`` per crop; horizontal flip of both crops
    and their boxes with prob 0.5.
    """

    def __init__(
        self,
        datasets: SequenceABC[tuple[TrackingDataset, float]],
        samples_per_epoch: int = 60000,
        seed: int = 0,
        max_gap: int = 200,
        template_size: int = 128,
        search_size: int = 256,
        template_factor: float = 2.0,
        search_factor: float = 4.0,
        template_center_jitter: float = 0.0,
        template_scale_jitter: float = 0.0,
        search_center_jitter: float = 3.0,
        search_scale_jitter: float = 0.25,
        gray_prob: float = 0.05,
        brightness_jitter: float = 0.2,
        flip_prob: float = 0.5,
    ) -> None:
        self.sampler = PairSampler(datasets, max_gap=max_gap)
        self.samples_per_epoch = int(samples_per_epoch)
        self.seed = int(seed)
        self.epoch = 0
        self.template_size, self.search_size = int(template_size), int(search_size)
        self.template_factor, self.search_factor = float(template_factor), float(search_factor)
        self.template_jitter = (float(template_center_jitter), float(template_scale_jitter))
        self.search_jitter = (float(search_center_jitter), float(search_scale_jitter))
        self.gray_prob = float(gray_prob)
        self.brightness_jitter = float(brightness_jitter)
        self.flip_prob = float(flip_prob)

    def __len__(self) -> int:
        return self.samples_per_epoch

    def set_epoch(self, epoch: int) -> None:
        """Draw a different set of pairs per epoch (call before creating the epoch's DataLoader iterator)."""
        self.epoch = int(epoch)

    def rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng(self.seed + self.epoch * self.samples_per_epoch + int(index))

    def choose(self, index: int) -> PairChoice:
        """The frames item ``index`` uses, without loading images."""
        return self.sampler.sample(self.rng(index))

    def _crop(
        self,
        image: np.ndarray,
        box: np.ndarray,
        factor: float,
        size: int,
        jitter: tuple[float, float],
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Crop with jitter redrawn (at most 10 times, then none) until the box centre lies inside the crop."""
        center = box[:2] + 0.5 * box[2:]
        for _ in range(10 if any(jitter) else 0):
            crop_box = crop_box_around(jitter_box(box, jitter[0], jitter[1], rng), factor)
            if (crop_box[:2] <= center).all() and (center < crop_box[:2] + crop_box[2:]).all():
                break
        else:
            crop_box = crop_box_around(box, factor)
        return resample_crop(image, crop_box, size), box_to_crop(box, crop_box, size)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.samples_per_epoch:
            raise IndexError(f"index {index} out of range for {self.samples_per_epoch} samples")
        rng = self.rng(index)
        choice = self.sampler.sample(rng)
        seq = self.sampler.sequence(choice.dataset, choice.sequence)
        t_img, s_img = load_frame(seq, choice.template), load_frame(seq, choice.search)
        t_crop, t_box = self._crop(
            t_img, seq.boxes[choice.template], self.template_factor, self.template_size, self.template_jitter, rng
        )
        s_crop, s_box = self._crop(
            s_img, seq.boxes[choice.search], self.search_factor, self.search_size, self.search_jitter, rng
        )
        crops = [torch.from_numpy(c).permute(2, 0, 1).float().div_(255.0) for c in (t_crop, s_crop)]
        if rng.random() < self.gray_prob:
            luma = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)
            crops = [(c * luma).sum(0, keepdim=True).expand(3, -1, -1).contiguous() for c in crops]
        if self.brightness_jitter:
            lo, hi = max(0.0, 1.0 - self.brightness_jitter), 1.0 + self.brightness_jitter
            crops = [c.mul_(rng.uniform(lo, hi)).clamp_(0.0, 1.0) for c in crops]
        if rng.random() < self.flip_prob:  # both crops together (a joint transform, as OSTrack's)
            crops = [c.flip(-1) for c in crops]
            t_box = np.array([self.template_size - t_box[0] - t_box[2], t_box[1], t_box[2], t_box[3]])
            s_box = np.array([self.search_size - s_box[0] - s_box[2], s_box[1], s_box[2], s_box[3]])
        return {
            "template": normalize_crop(crops[0]),
            "search": normalize_crop(crops[1]),
            "template_box": _normalised_clipped(t_box, self.template_size),
            "search_box": _normalised_clipped(s_box, self.search_size),
            "dataset": choice.dataset,
            "sequence": seq.name,
            "template_index": choice.template,
            "search_index": choice.search,
        }


def _normalised_clipped(box_in_crop: np.ndarray, size: int) -> torch.Tensor:
    """Crop-pixel xywh -> (x1, y1, w, h) / size, clipped to the crop [0, 1]^2, float32 tensor."""
    x1, y1 = np.clip(box_in_crop[:2], 0, size)
    x2, y2 = np.clip(box_in_crop[:2] + box_in_crop[2:], 0, size)
    return torch.tensor([x1, y1, x2 - x1, y2 - y1], dtype=torch.float32) / size
