"""Tiny GOT-10k / LaSOT / TrackingNet / COCO trees in the official on-disk layouts, for tests.

Every frame is a real photograph (one of scikit-image's sample images, chosen per sequence, resized to cover
the frame with a margin and panned slowly across it) with a textured object pasted at the ground-truth box:
a solid core of the sequence's colour (the middle half of the box, so the box centre shows that colour) in
a rim of stripes or checks of a dark and a light shade of it. The object moves (bouncing off the frame's
edges) and changes scale smoothly (up to ``MAX_SCALE_CHANGE`` between its smallest and largest size); its
pattern scales with it. It is not drawn on frames where it is absent / occluded / out of view. COCO images
hold several still textured objects over a photograph, one per object annotation.

Sizes and speeds are given for a 64 x 48 frame and scale with the frame (a 160 x 120 frame gets objects and
motions 2.5 times larger). Photographs are resized once per frame size (a module-level cache). Frames are
saved as JPEG of quality 98 without chroma subsampling: the object's solid core then stays within a few grey
levels of its colour (quality 95 over a photograph's detail could move it by up to ~16).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

COLORS = [(220, 40, 40), (40, 200, 60), (40, 80, 220), (230, 200, 30), (200, 40, 200), (30, 200, 200)]
# scikit-image sample images (bundled with the package, no download) used as backgrounds
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera", "stereo_motorcycle", "immunohistochemistry", "coins")
PAN_MARGIN = 1.25  # the resized photograph is this much larger than the frame: room for the pan
MAX_SCALE_CHANGE = 1.5  # largest / smallest object size within a sequence (at most)
CORE = 0.25  # the solid core spans the box's middle (0.5 - CORE, 0.5 + CORE) in both directions

_PHOTO_CACHE: dict[str, np.ndarray] = {}
_BACKDROP_CACHE: dict[tuple[str, int, int], np.ndarray] = {}


@dataclass
class SyntheticSequence:
    """What a layout writer put on disk for one sequence."""

    name: str
    boxes: np.ndarray  # float64 [n_frames, 4] xywh (integer-valued)
    visible: np.ndarray  # bool [n_frames]
    color: tuple[int, int, int]
    labels: dict[str, np.ndarray]  # GOT-10k: absence, cover, cut_by_image; LaSOT: full_occlusion, out_of_view


# ---------------------------------------------------------------------------------------------- backgrounds
def _photo(name: str) -> np.ndarray:
    """A scikit-image sample image as RGB uint8 (grey ones stacked to three channels), cached."""
    if name not in _PHOTO_CACHE:
        from skimage import data

        im = getattr(data, name)()
        if isinstance(im, tuple):  # stereo_motorcycle: (left, right, disparity)
            im = im[0]
        im = np.asarray(im)
        if im.ndim == 2:
            im = np.repeat(im[..., None], 3, axis=2)
        _PHOTO_CACHE[name] = np.ascontiguousarray(im[..., :3].astype(np.uint8))
    return _PHOTO_CACHE[name]


def backdrop(name: str, size: tuple[int, int]) -> np.ndarray:
    """Photograph ``name`` resized (aspect kept, antialiased) and centre-cropped to ``PAN_MARGIN`` times the
    frame ``size = (width, height)``: an ``[H', W', 3]`` uint8 array, cached per name and size."""
    width, height = size
    key = (name, int(width), int(height))
    if key not in _BACKDROP_CACHE:
        bw, bh = math.ceil(width * PAN_MARGIN), math.ceil(height * PAN_MARGIN)
        photo = _photo(name)
        ph, pw = photo.shape[:2]
        scale = max(bw / pw, bh / ph)
        rw, rh = max(bw, round(pw * scale)), max(bh, round(ph * scale))
        im = np.asarray(Image.fromarray(photo).resize((rw, rh), Image.BILINEAR))
        x0, y0 = (rw - bw) // 2, (rh - bh) // 2
        _BACKDROP_CACHE[key] = np.ascontiguousarray(im[y0 : y0 + bh, x0 : x0 + bw])
    return _BACKDROP_CACHE[key]


def _object_patch(width: int, height: int, color: tuple[int, int, int], pattern: tuple[int, int]) -> np.ndarray:
    """The object drawn in a ``width x height`` box: ``[height, width, 3]`` uint8.

    A solid core of ``color`` over the middle half of the box; around it stripes (vertical, horizontal,
    diagonal) or checks of ``freq`` periods across the box, alternating a dark and a light shade of ``color``.
    The pattern is defined in box-relative coordinates, so it scales with the box.
    """
    kind, freq = pattern
    u = (np.arange(width) + 0.5) / width
    v = (np.arange(height) + 0.5) / height
    uu, vv = np.meshgrid(u, v)
    k = 2 * freq
    band = [np.floor(uu * k), np.floor(vv * k), np.floor((uu + vv) * k), np.floor(uu * k) + np.floor(vv * k)][kind]
    c = np.asarray(color, dtype=np.float64)
    dark, light = 0.35 * c, np.minimum(255.0, 0.5 * c + 110.0)
    patch = np.where((band % 2 == 1)[..., None], dark, light)
    core = (np.abs(uu - 0.5) < CORE) & (np.abs(vv - 0.5) < CORE)
    patch[core] = c
    return np.round(patch).astype(np.uint8)


@dataclass
class _Scene:
    """How one sequence's frames are rendered: a panned photograph and the object's look."""

    backdrop: np.ndarray  # [H', W', 3] uint8
    offsets: np.ndarray  # int [n_frames, 2]: the frame's top-left corner (x, y) in the backdrop
    size: tuple[int, int]  # frame (width, height)
    color: tuple[int, int, int]
    pattern: tuple[int, int]  # (kind 0..3, periods across the box)

    def background(self, f: int) -> np.ndarray:
        """Frame ``f`` without the object: the frame-sized window of the backdrop at the pan's offset."""
        width, height = self.size
        ox, oy = (int(v) for v in self.offsets[min(f, len(self.offsets) - 1)])
        return self.backdrop[oy : oy + height, ox : ox + width].copy()

    def render(self, f: int, box: np.ndarray | None) -> np.ndarray:
        """Frame ``f`` (``[H, W, 3]`` uint8), with the object drawn in ``box`` (xywh) unless it is None."""
        frame = self.background(f)
        if box is not None:
            _paste(frame, box, self.color, self.pattern)
        return frame


def _paste(frame: np.ndarray, box, color: tuple[int, int, int], pattern: tuple[int, int]) -> None:
    """Draw the textured object (:func:`_object_patch`) into ``frame`` at the xywh ``box`` (clipped to it)."""
    height, width = frame.shape[:2]
    x, y, w, h = (int(round(float(v))) for v in box)
    if w <= 0 or h <= 0:
        return
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, width), min(y + h, height)
    if x1 > x0 and y1 > y0:
        frame[y0:y1, x0:x1] = _object_patch(w, h, color, pattern)[y0 - y : y1 - y, x0 - x : x1 - x]


def _pattern(rng: np.random.Generator) -> tuple[int, int]:
    """A random object pattern: (kind: vertical / horizontal / diagonal stripes or checks, 2 or 3 periods)."""
    return int(rng.integers(4)), int(rng.integers(2, 4))


def _make_scene(rng: np.random.Generator, n_frames: int, size: tuple[int, int], color: tuple[int, int, int]) -> _Scene:
    """A random photograph, a slow pan across it (bouncing at the backdrop's edges) and an object pattern."""
    width, height = size
    bd = backdrop(PHOTOS[int(rng.integers(len(PHOTOS)))], size)
    max_x, max_y = bd.shape[1] - width, bd.shape[0] - height
    pos = np.array([rng.uniform(0, max_x), rng.uniform(0, max_y)])
    angle = rng.uniform(0, 2 * np.pi)
    vel = rng.uniform(0.1, 0.4) * (width / 64) * np.array([np.cos(angle), np.sin(angle)])
    offsets = np.zeros((max(n_frames, 1), 2), dtype=np.int64)
    for f in range(len(offsets)):
        offsets[f] = np.clip(np.round(pos), 0, [max_x, max_y])
        for d, hi in enumerate((max_x, max_y)):
            if not 0 <= pos[d] + vel[d] <= hi:
                vel[d] = -vel[d]
        pos = pos + vel
    return _Scene(bd, offsets, (int(width), int(height)), tuple(color), _pattern(rng))


# ---------------------------------------------------------------------------------------------- motion
def _moving_boxes(rng: np.random.Generator, n_frames: int, size: tuple[int, int]) -> np.ndarray:
    """Integer-valued xywh boxes of an object that moves at a constant speed (bouncing off the frame's edges)
    and whose size follows a smooth sinusoid in log scale (largest / smallest up to ``MAX_SCALE_CHANGE``);
    the boxes stay inside the frame."""
    width, height = size
    sx, sy = width / 64, height / 48  # sizes and speeds below are for a 64 x 48 frame
    w0 = int(rng.integers(round(12 * sx), round(18 * sx) + 1))
    h0 = int(rng.integers(round(10 * sy), round(14 * sy) + 1))
    amp = 0.5 * math.log(MAX_SCALE_CHANGE) * rng.uniform(0.7, 1.0)
    period, phase = rng.uniform(24, 48), rng.uniform(0, 2 * np.pi)
    scale = np.exp(amp * np.sin(phase + 2 * np.pi * np.arange(n_frames) / period))
    ws = np.clip(np.round(w0 * scale), 1, width).astype(np.int64)
    hs = np.clip(np.round(h0 * scale), 1, height).astype(np.int64)
    lo = np.array([ws.max() / 2, hs.max() / 2])
    hi = np.array([width - ws.max() / 2, height - hs.max() / 2])
    centre = np.array([rng.uniform(lo[0], hi[0]), rng.uniform(lo[1], hi[1])])
    vel = np.array([rng.choice([-2, -1, 1, 2]) * sx, rng.choice([-1, 1]) * sy], dtype=np.float64)
    boxes = []
    for f in range(n_frames):
        w, h = int(ws[f]), int(hs[f])
        x = int(np.clip(round(centre[0] - w / 2), 0, width - w))
        y = int(np.clip(round(centre[1] - h / 2), 0, height - h))
        boxes.append([x, y, w, h])
        for d in range(2):
            if not lo[d] <= centre[d] + vel[d] <= hi[d]:
                vel[d] = -vel[d]
        centre = centre + vel
    return np.asarray(boxes, dtype=np.float64)


def _save(path: Path, frame: np.ndarray) -> None:
    Image.fromarray(frame).save(path, quality=98, subsampling=0)


def shows_object(frame: np.ndarray, box, color: tuple[int, int, int], tol: int = 12) -> bool:
    """Whether ``frame`` shows an object of ``color`` at the xywh ``box``: the middle third of the box (inside
    the object's solid core) is that colour (median over its pixels of the largest channel difference)."""
    x, y, w, h = (int(round(float(v))) for v in box)
    core = frame[y + h // 3 : y + h - h // 3, x + w // 3 : x + w - w // 3].reshape(-1, 3).astype(np.int64)
    return len(core) > 0 and bool(np.median(np.abs(core - np.asarray(color)).max(axis=1)) <= tol)


def make_got10k_layout(
    root: str | Path, n_seqs: int, n_frames: int, split: str, size: tuple[int, int] = (64, 48), seed: int = 0
) -> dict[str, SyntheticSequence]:
    """Write ``root/<split>/`` with ``list.txt`` and ``n_seqs`` sequences; return the true annotations by name.

    Frame 3, 8, 13, ... (1-based) is absent (absence 1, cover 0); frame 2 is fully occluded (absence 0, cover 0);
    the others have cover 1..8. For ``test`` only the first box is written and no label / meta files.
    """
    rng = np.random.default_rng(seed)
    split_dir = Path(root) / split
    split_dir.mkdir(parents=True, exist_ok=True)
    out: dict[str, SyntheticSequence] = {}
    for i in range(n_seqs):
        name = f"GOT-10k_{split.capitalize()}_{i + 1:06d}"
        folder = split_dir / name
        folder.mkdir()
        boxes = _moving_boxes(rng, n_frames, size)
        absence = np.array([1 if f % 5 == 2 else 0 for f in range(n_frames)], dtype=np.int64)
        cover = np.where(absence == 1, 0, rng.integers(1, 9, n_frames))
        if n_frames > 1 and absence[1] == 0:
            cover[1] = 0
        cut = (rng.random(n_frames) < 0.2).astype(np.int64)
        visible = (absence == 0) & (cover > 0)
        color = COLORS[i % len(COLORS)]
        scene = _make_scene(rng, n_frames, size, color)
        for f in range(n_frames):
            draw = split == "test" or bool(visible[f])
            _save(folder / f"{f + 1:08d}.jpg", scene.render(f, boxes[f] if draw else None))
        gt_rows = boxes[:1] if split == "test" else boxes
        (folder / "groundtruth.txt").write_text("".join(",".join(f"{v:.4f}" for v in b) + "\n" for b in gt_rows))
        if split != "test":
            (folder / "absence.label").write_text("".join(f"{v}\n" for v in absence))
            (folder / "cover.label").write_text("".join(f"{v}\n" for v in cover))
            (folder / "cut_by_image.label").write_text("".join(f"{v}\n" for v in cut))
            (folder / "meta_info.ini").write_text(
                "[METAINFO]\nurl: https://youtu.be/abc?t=1:02\nbegin: 00:00:01\nend: 00:00:09\nanno_fps: 10Hz\n"
                f"object_class: rectangle{i}\nmotion_class: sliding\nresolution: ({size[0]}, {size[1]})\n"
            )
        out[name] = SyntheticSequence(
            name, boxes, visible, color, {"absence": absence, "cover": cover, "cut_by_image": cut}
        )
    (split_dir / "list.txt").write_text("".join(f"{n}\n" for n in out))
    return out


def make_lasot_layout(
    root: str | Path, names: list[str], n_frames: int, size: tuple[int, int] = (64, 48), seed: int = 0
) -> dict[str, SyntheticSequence]:
    """Write ``root/<class>/<class>-<N>/`` for each name; return the true annotations by name.

    Frame 2 (1-based) is fully occluded and frame 4 out of view; the others are visible.
    """
    rng = np.random.default_rng(seed)
    out: dict[str, SyntheticSequence] = {}
    for i, name in enumerate(names):
        cls = name.rsplit("-", 1)[0]
        folder = Path(root) / cls / name
        (folder / "img").mkdir(parents=True)
        boxes = _moving_boxes(rng, n_frames, size)
        occ = np.zeros(n_frames, dtype=bool)
        oov = np.zeros(n_frames, dtype=bool)
        occ[1 % n_frames] = n_frames > 1
        oov[3 % n_frames] = n_frames > 3
        visible = ~occ & ~oov
        color = COLORS[i % len(COLORS)]
        scene = _make_scene(rng, n_frames, size, color)
        for f in range(n_frames):
            _save(folder / "img" / f"{f + 1:08d}.jpg", scene.render(f, boxes[f] if visible[f] else None))
        (folder / "groundtruth.txt").write_text("".join(",".join(str(int(v)) for v in b) + "\n" for b in boxes))
        (folder / "full_occlusion.txt").write_text(",".join(str(int(v)) for v in occ))
        (folder / "out_of_view.txt").write_text(",".join(str(int(v)) for v in oov))
        (folder / "nlp.txt").write_text(f"a textured {cls} moving over a photograph\n")
        out[name] = SyntheticSequence(name, boxes, visible, color, {"full_occlusion": occ, "out_of_view": oov})
    return out


def make_trackingnet_layout(
    root: str | Path,
    chunks: list[str],
    n_seqs: int,
    n_frames: int,
    size: tuple[int, int] = (64, 48),
    seed: int = 0,
) -> dict[str, SyntheticSequence]:
    """Write ``root/<chunk>/frames/<video>/0.jpg ...`` and ``root/<chunk>/anno/<video>.txt`` for each chunk;
    return the true annotations by sequence name ``<chunk>/<video>``.

    Frame 2 (0-based) has a zero-size box (``x,y,0,0``: not visible, not drawn); the others are visible. In
    ``TEST`` only the first box is written (as in the official test set).
    """
    rng = np.random.default_rng(seed)
    out: dict[str, SyntheticSequence] = {}
    k = 0
    for chunk in chunks:
        for i in range(n_seqs):
            video = f"-tn{k:02d}_{i}"  # TrackingNet videos are YouTube ids (may start with '-') + '_' + number
            frame_dir = Path(root) / chunk / "frames" / video
            frame_dir.mkdir(parents=True)
            (Path(root) / chunk / "anno").mkdir(exist_ok=True)
            boxes = _moving_boxes(rng, n_frames, size)
            visible = np.ones(n_frames, dtype=bool)
            if n_frames > 2:
                boxes[2, 2:] = 0.0
                visible[2] = False
            color = COLORS[k % len(COLORS)]
            scene = _make_scene(rng, n_frames, size, color)
            for f in range(n_frames):
                _save(frame_dir / f"{f}.jpg", scene.render(f, boxes[f] if visible[f] else None))
            rows = boxes[:1] if chunk == "TEST" else boxes
            text = "".join(",".join(f"{v:.2f}" if j < 2 else f"{v:g}" for j, v in enumerate(b)) + "\n" for b in rows)
            (Path(root) / chunk / "anno" / f"{video}.txt").write_text(text)
            out[f"{chunk}/{video}"] = SyntheticSequence(f"{chunk}/{video}", boxes, visible, color, {})
            k += 1
    return out


@dataclass
class SyntheticObject:
    """One COCO object annotation a layout writer put on disk (boxes are integer-valued xywh)."""

    annotation_id: int
    image_id: int
    file_name: str
    box: np.ndarray  # float64 [4]
    color: tuple[int, int, int]
    category_id: int


COCO_CATEGORIES = [
    {"id": 1, "name": "person", "supercategory": "person"},
    {"id": 3, "name": "car", "supercategory": "vehicle"},
]


def make_coco_layout(
    root: str | Path,
    n_images: int,
    objects_per_image: int,
    split: str = "train2017",
    size: tuple[int, int] = (128, 96),
    seed: int = 0,
) -> dict[int, SyntheticObject]:
    """Write ``root/annotations/instances_<split>.json`` and ``root/<split>/<file_name>.jpg``; return the
    objects that a reader should yield, by annotation id.

    Each image is a photograph divided in a grid of cells (at most 2 x 2: ``objects_per_image <= 4``), one
    textured object per cell, each of its own colour, with a polygon ``segmentation``. Each image also gets
    two annotations a reader must skip: a crowd one (``iscrowd: 1``, RLE segmentation) and one of zero width.
    Annotation ids are not in image order (the JSON lists them image by image, ids decreasing).
    """
    if not 1 <= objects_per_image <= 4:
        raise ValueError("objects_per_image must be 1..4")
    rng = np.random.default_rng(seed)
    root = Path(root)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / split).mkdir(parents=True, exist_ok=True)
    width, height = size
    cw, ch = width // 2, height // 2
    images, annotations, out = [], [], {}
    next_id = 900_000
    for i in range(n_images):
        image_id = 1000 + 37 * i
        file_name = f"{image_id:012d}.jpg"
        frame = _make_scene(rng, 1, size, COLORS[0]).background(0)
        for o in range(objects_per_image):
            cx0, cy0 = (o % 2) * cw, (o // 2) * ch
            w, h = int(rng.integers(14, cw - 4)), int(rng.integers(12, ch - 4))
            x, y = cx0 + int(rng.integers(1, cw - w)), cy0 + int(rng.integers(1, ch - h))
            color = COLORS[(i + o) % len(COLORS)]
            _paste(frame, (x, y, w, h), color, _pattern(rng))
            cat = COCO_CATEGORIES[o % 2]["id"]
            ann_id, next_id = next_id, next_id - 11
            annotations.append(
                {
                    "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]],
                    "area": float(w * h),
                    "iscrowd": 0,
                    "image_id": image_id,
                    "bbox": [float(x), float(y), float(w), float(h)],
                    "category_id": cat,
                    "id": ann_id,
                }
            )
            box = np.array([x, y, w, h], dtype=np.float64)
            out[ann_id] = SyntheticObject(ann_id, image_id, file_name, box, color, cat)
        for extra in ({"iscrowd": 1, "bbox": [2.0, 2.0, 10.0, 10.0]}, {"iscrowd": 0, "bbox": [5.0, 5.0, 0.0, 8.0]}):
            seg = {"counts": [0, 5, 3], "size": [height, width]} if extra["iscrowd"] else [[5, 5, 5, 13]]
            annotations.append(
                {"segmentation": seg, "area": 0.0, "image_id": image_id, "category_id": 1, "id": next_id, **extra}
            )
            next_id -= 11
        _save(root / split / file_name, frame)
        images.append({"license": 1, "file_name": file_name, "height": height, "width": width, "id": image_id})
    doc = {"info": {"description": "synthetic"}, "licenses": [], "images": images, "annotations": annotations}
    doc["categories"] = COCO_CATEGORIES
    (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(doc))
    return out
