"""Tiny GOT-10k / LaSOT trees in the official on-disk layouts, for tests: a coloured rectangle (the object)
moves over a grey background; it is not drawn on frames where it is absent / occluded / out of view."""

from __future__ import annotations

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
