"""Tiny GOT-10k / LaSOT / TrackingNet / COCO trees in the official on-disk layouts, for tests: a coloured
rectangle (the object) moves over a grey background; it is not drawn on frames where it is absent / occluded /
out of view. COCO images hold several still rectangles, one per object annotation."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

BACKGROUND = (100, 100, 100)
COLORS = [(220, 40, 40), (40, 200, 60), (40, 80, 220), (230, 200, 30), (200, 40, 200), (30, 200, 200)]


@dataclass
class SyntheticSequence:
    """What a layout writer put on disk for one sequence."""

    name: str
    boxes: np.ndarray  # float64 [n_frames, 4] xywh (integer-valued)
    visible: np.ndarray  # bool [n_frames]
    color: tuple[int, int, int]
    labels: dict[str, np.ndarray]  # GOT-10k: absence, cover, cut_by_image; LaSOT: full_occlusion, out_of_view


def _moving_boxes(rng: np.random.Generator, n_frames: int, size: tuple[int, int]) -> np.ndarray:
    width, height = size
    w, h = int(rng.integers(12, 19)), int(rng.integers(10, 15))
    x, y = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
    vx, vy = int(rng.choice([-2, -1, 1, 2])), int(rng.choice([-1, 1]))
    boxes = []
    for _ in range(n_frames):
        boxes.append([x, y, w, h])
        if not 0 <= x + vx <= width - w:
            vx = -vx
        if not 0 <= y + vy <= height - h:
            vy = -vy
        x, y = x + vx, y + vy
    return np.asarray(boxes, dtype=np.float64)


def _write_frame(path: Path, size: tuple[int, int], box: np.ndarray, color: tuple[int, int, int], draw: bool) -> None:
    im = Image.new("RGB", size, BACKGROUND)
    if draw:
        x, y, w, h = (int(v) for v in box)
        ImageDraw.Draw(im).rectangle([x, y, x + w - 1, y + h - 1], fill=color)
    im.save(path, quality=95, subsampling=0)


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
        for f in range(n_frames):
            _write_frame(folder / f"{f + 1:08d}.jpg", size, boxes[f], color, split == "test" or bool(visible[f]))
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
        for f in range(n_frames):
            _write_frame(folder / "img" / f"{f + 1:08d}.jpg", size, boxes[f], color, bool(visible[f]))
        (folder / "groundtruth.txt").write_text("".join(",".join(str(int(v)) for v in b) + "\n" for b in boxes))
        (folder / "full_occlusion.txt").write_text(",".join(str(int(v)) for v in occ))
        (folder / "out_of_view.txt").write_text(",".join(str(int(v)) for v in oov))
        (folder / "nlp.txt").write_text(f"a coloured {cls} sliding over grey\n")
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
            for f in range(n_frames):
                _write_frame(frame_dir / f"{f}.jpg", size, boxes[f], color, bool(visible[f]))
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

    Each image is a grid of cells (at most 2 x 2: ``objects_per_image <= 4``), one filled rectangle per cell,
    each of its own colour, with a polygon ``segmentation``. Each image also gets two annotations a reader must
    skip: a crowd one (``iscrowd: 1``, RLE segmentation) and one of zero width. Annotation ids are not in
    image order (the JSON lists them image by image, ids decreasing).
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
        im = Image.new("RGB", size, BACKGROUND)
        draw = ImageDraw.Draw(im)
        for o in range(objects_per_image):
            cx0, cy0 = (o % 2) * cw, (o // 2) * ch
            w, h = int(rng.integers(14, cw - 4)), int(rng.integers(12, ch - 4))
            x, y = cx0 + int(rng.integers(1, cw - w)), cy0 + int(rng.integers(1, ch - h))
            color = COLORS[(i + o) % len(COLORS)]
            draw.rectangle([x, y, x + w - 1, y + h - 1], fill=color)
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
        im.save(root / split / file_name, quality=95, subsampling=0)
        images.append({"license": 1, "file_name": file_name, "height": height, "width": width, "id": image_id})
    doc = {"info": {"description": "synthetic"}, "licenses": [], "images": images, "annotations": annotations}
    doc["categories"] = COCO_CATEGORIES
    (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(doc))
    return out
