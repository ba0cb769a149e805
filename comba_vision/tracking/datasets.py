"""Readers for the official on-disk layouts of GOT-10k, LaSOT, TrackingNet and COCO 2017 (OSTrack's four
training sets), and a registry of them (``DATASETS`` / :func:`build_dataset`).

The video readers list their sequences when built and parse one sequence's annotation files only when it is asked
for (``get_sequence``); nothing is cached, so a reader is cheap to copy into DataLoader workers. Boxes are
``x, y, w, h`` in pixels of the frame (continuous coordinates: pixel ``i`` covers ``[i, i + 1)``), float64.

Errors name the offending path: a missing root or split folder (with the expected layout), a malformed
annotation line (file, 1-based line number and the line itself), a frame count that differs from the number
of annotation lines (sequence and both counts), and a frame that an annotation line refers to but that is
not on disk (raised by :func:`load_frame`).

LaSOT's train / test split is the official protocol-II one: the 280 test sequences are encoded below as
``LASOT_TEST_SEQUENCES`` (4 per class, 70 classes; the list of LaSOT's ``testing_set.txt``, as used by
pytracking / OSTrack), and the training set is every other sequence. ``Lasot(..., split_file=PATH)``
replaces the constant by a file that lists the requested split's sequence names, one per line.

TrackingNet names its sequences ``<chunk>/<video>`` (``TRAIN_3/<video>``); a box with ``w <= 0`` or ``h <= 0``
is not visible. COCO makes each non-crowd, positive-area object annotation a one-frame sequence (template and
search come from the same image); its JSON is parsed once when the reader is built.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

__all__ = [
    "DATASETS",
    "LASOT_TEST_SEQUENCES",
    "Coco",
    "Got10k",
    "Lasot",
    "Sequence",
    "TrackingDataset",
    "TrackingNet",
    "build_dataset",
    "load_frame",
]


@dataclass
class Sequence:
    """One annotated video: frame paths, per-frame boxes (xywh) and visibility, and dataset-specific meta."""

    name: str
    frames: list[Path]
    boxes: np.ndarray  # float64 [N, 4] xywh ([1, 4] for GOT-10k test: only the first frame is annotated)
    visible: np.ndarray  # bool [N], one per box
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.frames)


def load_frame(seq: Sequence, idx: int) -> np.ndarray:
    """Frame ``idx`` (0-based) of ``seq`` as an RGB uint8 array [H, W, 3]."""
    if not -len(seq.frames) <= idx < len(seq.frames):
        raise IndexError(f"frame index {idx} out of range for sequence {seq.name} with {len(seq.frames)} frames")
    path = seq.frames[idx]
    if not path.is_file():
        raise FileNotFoundError(f"frame {idx + 1 if idx >= 0 else idx} of sequence {seq.name} is missing: {path}")
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


# --------------------------------------------------------------------------------------------- text parsing
def _lines(path: Path) -> list[str]:
    """The file's lines, trailing blank lines dropped (a blank line in the middle stays and is malformed)."""
    lines = path.read_text().splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def _require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    return path


def _read_boxes(path: Path) -> np.ndarray:
    """``x,y,w,h`` per line -> float64 [N, 4]; a bad line is a ValueError naming file, line number and line."""
    rows = []
    for lineno, line in enumerate(_lines(_require_file(path, "annotation file")), 1):
        parts = line.strip().split(",")
        if len(parts) != 4:
            raise ValueError(
                f"{path}, line {lineno}: expected 4 comma-separated numbers (x,y,w,h), got {len(parts)}: {line!r}"
            )
        try:
            values = [float(p) for p in parts]
        except ValueError:
            raise ValueError(f"{path}, line {lineno}: non-numeric value in {line!r}") from None
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"{path}, line {lineno}: non-finite value in {line!r}")
        rows.append(values)
    if not rows:
        raise ValueError(f"{path}: no annotation lines")
    return np.asarray(rows, dtype=np.float64)


def _parse_int(token: str, path: Path, lineno: int, line: str, allowed: range) -> int:
    try:
        value = int(token.strip())
    except ValueError:
        raise ValueError(f"{path}, line {lineno}: expected an integer label, got {line!r}") from None
    if value not in allowed:
        raise ValueError(
            f"{path}, line {lineno}: label {value} outside {allowed.start}..{allowed.stop - 1} in {line!r}"
        )
    return value


def _read_label_column(path: Path, allowed: range) -> np.ndarray:
    """One integer label per line (GOT-10k ``*.label``) -> int64 [N]."""
    values = []
    for lineno, line in enumerate(_lines(path), 1):
        if "," in line or len(line.split()) != 1:
            raise ValueError(f"{path}, line {lineno}: expected one integer label, got {line!r}")
        values.append(_parse_int(line, path, lineno, line, allowed))
    return np.asarray(values, dtype=np.int64)


def _read_label_row(path: Path) -> np.ndarray:
    """One line of comma-separated 0/1 flags (LaSOT ``full_occlusion.txt`` / ``out_of_view.txt``) -> bool [N]."""
    lines = _lines(_require_file(path, "label file"))
    if len(lines) != 1:
        bad = 1 if not lines else 2
        shown = lines[bad - 1] if lines else ""
        raise ValueError(f"{path}, line {bad}: expected exactly one line of comma-separated 0/1 flags, got {shown!r}")
    line = lines[0]
    flags = [_parse_int(tok, path, 1, line, range(2)) for tok in line.strip().split(",")]
    return np.asarray(flags, dtype=bool)


def _count_jpgs(folder: Path) -> int:
    with os.scandir(folder) as entries:  # d_type from the directory listing: no stat per frame
        return sum(1 for e in entries if e.name.lower().endswith(".jpg") and e.is_file())


def _numbered_frames(folder: Path, n: int) -> list[Path]:
    return [folder / f"{i:08d}.jpg" for i in range(1, n + 1)]


def _check_count(seq_name: str, folder: Path, n_annotations: int, what: str) -> None:
    n_files = _count_jpgs(folder)
    if n_files != n_annotations:
        raise ValueError(f"sequence {seq_name}: {n_files} frame files (*.jpg) in {folder} but {n_annotations} {what}")


# ------------------------------------------------------------------------------------------------ datasets
class TrackingDataset:
    """A list of named sequences; ``get_sequence`` parses one of them."""

    name: str = "tracking"
    #: False where only the first frame is annotated (GOT-10k test): not usable for training pairs.
    fully_annotated: bool = True

    def __init__(self) -> None:
        self._names: list[str] = []
        self._index: dict[str, int] = {}

    def _set_names(self, names: list[str]) -> None:
        self._names = list(names)
        self._index = {n: i for i, n in enumerate(self._names)}

    def __len__(self) -> int:
        return len(self._names)

    @property
    def sequence_names(self) -> list[str]:
        return list(self._names)

    def get_sequence(self, i_or_name: int | str) -> Sequence:
        """The sequence at index ``i`` or with name ``name``."""
        if isinstance(i_or_name, str):
            if i_or_name not in self._index:
                raise KeyError(f"{self.name}: no sequence named {i_or_name!r}")
            name = i_or_name
        else:
            i = int(i_or_name)
            if not -len(self._names) <= i < len(self._names):
                raise IndexError(f"{self.name}: sequence index {i} out of range ({len(self._names)} sequences)")
            name = self._names[i]
        return self._load(name)

    def _load(self, name: str) -> Sequence:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} sequences)"


_GOT10K_LAYOUT = (
    "<root>/<split>/list.txt (sequence names, one per line; optional) and <root>/<split>/<sequence>/ holding "
    "00000001.jpg..., groundtruth.txt, absence.label, cover.label, cut_by_image.label, meta_info.ini"
)


def _parse_meta_info(path: Path) -> dict[str, str]:
    """``key: value`` lines of GOT-10k's ``meta_info.ini`` (``[METAINFO]`` section) as a dict of strings."""
    meta: dict[str, str] = {}
    for line in path.read_text(errors="replace").splitlines():
        s = line.strip()
        if not s or s.startswith(("[", "#", ";")):
            continue
        key, sep, value = s.partition(":")
        if sep:
            meta[key.strip()] = value.strip()
    return meta


class Got10k(TrackingDataset):
    """GOT-10k ``train`` / ``val`` / ``test`` in the official layout (see ``_GOT10K_LAYOUT``).

    Train / val: every frame is annotated; visible = ``absence == 0 and cover > 0``; ``absence.label`` and
    ``cover.label`` are required, ``cut_by_image.label`` and ``meta_info.ini`` are optional.
    Test: only the first frame's box exists; ``boxes`` is [1, 4], ``visible`` is ``[True]`` and ``frames`` are
    the ``*.jpg`` files of the folder, sorted.
    """

    name = "got10k"
    SPLITS = ("train", "val", "test")

    def __init__(self, root: str | Path, split: str = "train") -> None:
        super().__init__()
        if split not in self.SPLITS:
            raise ValueError(f"GOT-10k split must be one of {self.SPLITS}, got {split!r}")
        self.root = Path(root)
        self.split = split
        self.fully_annotated = split != "test"
        if not self.root.is_dir():
            raise FileNotFoundError(f"GOT-10k root not found: {self.root}; expected layout: {_GOT10K_LAYOUT}")
        self.split_dir = self.root / split
        if not self.split_dir.is_dir():
            raise FileNotFoundError(
                f"GOT-10k split folder not found: {self.split_dir}; expected layout: {_GOT10K_LAYOUT}"
            )
        list_file = self.split_dir / "list.txt"
        if list_file.is_file():
            names = [ln.strip() for ln in list_file.read_text().splitlines() if ln.strip()]
            for n in names:
                if not (self.split_dir / n).is_dir():
                    raise FileNotFoundError(f"sequence {n} listed in {list_file} has no folder: {self.split_dir / n}")
        else:
            names = sorted(p.name for p in self.split_dir.iterdir() if p.is_dir())
        if not names:
            raise FileNotFoundError(f"no GOT-10k sequences in {self.split_dir}; expected layout: {_GOT10K_LAYOUT}")
        self._set_names(names)

    def _load(self, name: str) -> Sequence:
        folder = self.split_dir / name
        boxes = _read_boxes(folder / "groundtruth.txt")
        meta_file = folder / "meta_info.ini"
        meta_info = _parse_meta_info(meta_file) if meta_file.is_file() else {}
        meta: dict[str, Any] = {
            "dataset": self.name,
            "split": self.split,
            "object_class": meta_info.get("object_class"),
            "meta_info": meta_info,
        }
        if self.split == "test":
            frames = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".jpg" and p.is_file())
            if not frames:
                raise FileNotFoundError(f"sequence {name}: no frame files (*.jpg) in {folder}")
            return Sequence(name, frames, boxes[:1], np.ones(1, dtype=bool), meta)

        n = len(boxes)
        _check_count(name, folder, n, f"lines in {folder / 'groundtruth.txt'}")
        labels: dict[str, np.ndarray | None] = {}
        for key, allowed, required in (
            ("absence", range(2), True),
            ("cover", range(9), True),
            ("cut_by_image", range(2), False),
        ):
            path = folder / f"{key}.label"
            if not path.is_file():
                if required:
                    raise FileNotFoundError(f"sequence {name}: label file not found: {path}")
                labels[key] = None
                continue
            values = _read_label_column(path, allowed)
            if len(values) != n:
                raise ValueError(f"sequence {name}: {path} has {len(values)} lines but groundtruth.txt has {n}")
            labels[key] = values
        visible = (labels["absence"] == 0) & (labels["cover"] > 0)
        meta.update(labels)
        return Sequence(name, _numbered_frames(folder, n), boxes, visible, meta)


def _lasot_test_sequences() -> frozenset[str]:
    ids = {
        "airplane": (1, 9, 13, 15),
        "basketball": (1, 6, 7, 11),
        "bear": (2, 4, 6, 17),
        "bicycle": (2, 7, 9, 18),
        "bird": (2, 3, 15, 17),
        "boat": (3, 4, 12, 17),
        "book": (3, 10, 11, 19),
        "bottle": (1, 12, 14, 18),
        "bus": (2, 5, 17, 19),
        "car": (2, 6, 9, 17),
        "cat": (1, 3, 18, 20),
        "cattle": (2, 7, 12, 13),
        "chameleon": (3, 6, 11, 20),
        "coin": (3, 6, 7, 18),
        "crab": (3, 6, 12, 18),
        "crocodile": (3, 4, 10, 14),
        "cup": (1, 4, 7, 17),
        "deer": (4, 8, 10, 14),
        "dog": (1, 7, 15, 19),
        "drone": (2, 7, 13, 15),
        "electricfan": (1, 10, 18, 20),
        "elephant": (1, 12, 16, 18),
        "flag": (2, 3, 5, 9),
        "fox": (2, 3, 5, 20),
        "frog": (3, 4, 9, 20),
        "gametarget": (1, 2, 7, 13),
        "gecko": (1, 5, 16, 19),
        "giraffe": (2, 10, 13, 15),
        "goldfish": (3, 7, 8, 10),
        "gorilla": (4, 6, 9, 13),
        "guitar": (3, 8, 10, 16),
        "hand": (2, 3, 9, 16),
        "hat": (1, 2, 5, 18),
        "helmet": (5, 11, 13, 19),
        "hippo": (1, 7, 9, 20),
        "horse": (1, 4, 12, 15),
        "kangaroo": (2, 5, 11, 14),
        "kite": (4, 6, 10, 15),
        "leopard": (1, 7, 16, 20),
        "licenseplate": (6, 12, 13, 15),
        "lion": (1, 5, 12, 20),
        "lizard": (1, 3, 6, 13),
        "microphone": (2, 6, 14, 16),
        "monkey": (3, 4, 9, 17),
        "motorcycle": (1, 3, 9, 18),
        "mouse": (1, 8, 9, 17),
        "person": (1, 5, 10, 12),
        "pig": (2, 10, 13, 18),
        "pool": (3, 7, 12, 15),
        "rabbit": (10, 13, 17, 19),
        "racing": (10, 15, 16, 20),
        "robot": (1, 5, 8, 19),
        "rubicCube": (1, 6, 14, 19),
        "sepia": (6, 8, 13, 16),
        "shark": (2, 3, 5, 6),
        "sheep": (3, 5, 7, 9),
        "skateboard": (3, 8, 16, 19),
        "spider": (14, 16, 18, 20),
        "squirrel": (8, 11, 13, 19),
        "surfboard": (4, 5, 8, 12),
        "swing": (10, 14, 17, 20),
        "tank": (6, 9, 14, 16),
        "tiger": (4, 6, 12, 18),
        "train": (1, 7, 11, 20),
        "truck": (3, 6, 7, 16),
        "turtle": (5, 8, 9, 16),
        "umbrella": (2, 9, 17, 19),
        "volleyball": (1, 13, 18, 19),
        "yoyo": (7, 15, 17, 19),
        "zebra": (10, 14, 16, 17),
    }
    return frozenset(f"{cls}-{i}" for cls, nums in ids.items() for i in nums)


#: LaSOT's official protocol-II test set (``testing_set.txt``): 280 sequences, 4 of each of the 70 classes.
LASOT_TEST_SEQUENCES: frozenset[str] = _lasot_test_sequences()

_LASOT_LAYOUT = (
    "<root>/<class>/<class>-<N>/ holding img/00000001.jpg..., groundtruth.txt, full_occlusion.txt, "
    "out_of_view.txt, nlp.txt"
)
_LASOT_SEQ = re.compile(r"^(?P<cls>.+)-(?P<num>\d+)$")


def _lasot_key(name: str) -> tuple[str, int]:
    m = _LASOT_SEQ.match(name)
    return (m["cls"], int(m["num"])) if m else (name, -1)


class Lasot(TrackingDataset):
    """LaSOT in the official layout (see ``_LASOT_LAYOUT``); ``split`` is ``"train"``, ``"test"`` or ``"all"``.

    The test split is ``LASOT_TEST_SEQUENCES`` (or the names in ``split_file``) and every one of them must be on
    disk unless ``allow_missing=True``; the train split is every other sequence found on disk (or the names in
    ``split_file``). Visible = not fully occluded and not out of view.
    """

    name = "lasot"
    SPLITS = ("train", "test", "all")

    def __init__(
        self, root: str | Path, split: str = "train", split_file: str | Path | None = None, allow_missing: bool = False
    ) -> None:
        super().__init__()
        if split not in self.SPLITS:
            raise ValueError(f"LaSOT split must be one of {self.SPLITS}, got {split!r}")
        self.root = Path(root)
        self.split = split
        if not self.root.is_dir():
            raise FileNotFoundError(f"LaSOT root not found: {self.root}; expected layout: {_LASOT_LAYOUT}")
        on_disk = {
            seq.name
            for cls in self.root.iterdir()
            if cls.is_dir()
            for seq in cls.iterdir()
            if seq.is_dir() and seq.name.startswith(cls.name + "-") and _LASOT_SEQ.match(seq.name)
        }
        if not on_disk:
            raise FileNotFoundError(f"no LaSOT sequences in {self.root}; expected layout: {_LASOT_LAYOUT}")

        if split == "all":
            if split_file is not None:
                raise ValueError("split_file has no meaning with split='all'")
            names = on_disk
        else:
            if split_file is not None:
                split_path = Path(split_file)
                if not split_path.is_file():
                    raise FileNotFoundError(f"LaSOT split file not found: {split_path}")
                wanted = {ln.strip() for ln in split_path.read_text().splitlines() if ln.strip()}
            elif split == "test":
                wanted = set(LASOT_TEST_SEQUENCES)
            else:
                wanted = on_disk - LASOT_TEST_SEQUENCES
            missing = sorted(wanted - on_disk, key=_lasot_key)
            if missing and not allow_missing:
                shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
                raise FileNotFoundError(
                    f"{len(missing)} LaSOT {split} sequences not found under {self.root} ({shown}); expected "
                    f"layout: {_LASOT_LAYOUT} (pass allow_missing=True to use the ones present)"
                )
            names = wanted & on_disk
            if not names:
                raise FileNotFoundError(f"none of the LaSOT {split} sequences is under {self.root}")
        self._set_names(sorted(names, key=_lasot_key))

    def sequence_dir(self, name: str) -> Path:
        return self.root / _lasot_key(name)[0] / name

    def _load(self, name: str) -> Sequence:
        folder = self.sequence_dir(name)
        gt = folder / "groundtruth.txt"
        boxes = _read_boxes(gt)
        n = len(boxes)
        img_dir = folder / "img"
        if not img_dir.is_dir():
            raise FileNotFoundError(f"sequence {name}: frame folder not found: {img_dir}")
        _check_count(name, img_dir, n, f"lines in {gt}")
        flags = {}
        for key in ("full_occlusion", "out_of_view"):
            path = folder / f"{key}.txt"
            values = _read_label_row(path)
            if len(values) != n:
                raise ValueError(f"sequence {name}: {path} has {len(values)} flags but {gt} has {n} lines")
            flags[key] = values
        nlp_file = folder / "nlp.txt"
        nlp = nlp_file.read_text(errors="replace").strip() if nlp_file.is_file() else None
        meta = {"dataset": self.name, "object_class": _lasot_key(name)[0], "nlp": nlp, **flags}
        visible = ~flags["full_occlusion"] & ~flags["out_of_view"]
        return Sequence(name, _numbered_frames(img_dir, n), boxes, visible, meta)


# ------------------------------------------------------------------------------------------------ TrackingNet
_TRACKINGNET_LAYOUT = (
    "<root>/TRAIN_0 .. <root>/TRAIN_11 and <root>/TEST, each holding frames/<sequence>/0.jpg, 1.jpg, ... "
    "(numbered from 0, no zero padding; the chunk's zips/ extracted) and anno/<sequence>.txt (x,y,w,h per line)"
)
_TRACKINGNET_CHUNK = re.compile(r"^(TRAIN_(?P<num>\d+)|TEST)$")


def _trackingnet_chunk_key(chunk: str) -> tuple[int, int]:
    m = _TRACKINGNET_CHUNK.match(chunk)
    return (1, 0) if m is None or m["num"] is None else (0, int(m["num"]))


class TrackingNet(TrackingDataset):
    """TrackingNet in the official layout (see ``_TRACKINGNET_LAYOUT``).

    ``chunks`` selects chunk folders by name (``"TRAIN_3"``, ``"TEST"``) or training chunk number (``3``);
    the default is every ``TRAIN_<k>`` folder under ``root``, in numeric order. Sequence names are
    ``<chunk>/<sequence>`` (e.g. ``TRAIN_3/-0A5LeYdn8c_0``), listed from ``anno/*.txt``. Visible = ``w > 0 and
    h > 0``. ``TEST`` (first frame annotated only) gives ``boxes`` [1, 4] and ``visible`` ``[True]`` as GOT-10k
    test does, and cannot be mixed with training chunks.
    """

    name = "trackingnet"

    def __init__(self, root: str | Path, chunks: Any = None) -> None:
        super().__init__()
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"TrackingNet root not found: {self.root}; expected layout: {_TRACKINGNET_LAYOUT}")
        if chunks is None:
            names = [
                p.name
                for p in self.root.iterdir()
                if p.is_dir() and _TRACKINGNET_CHUNK.match(p.name) and p.name != "TEST"
            ]
            if not names:
                raise FileNotFoundError(
                    f"no TrackingNet TRAIN_<k> chunk folders in {self.root}; expected layout: {_TRACKINGNET_LAYOUT}"
                )
            chunk_list = sorted(names, key=_trackingnet_chunk_key)
        else:
            if isinstance(chunks, (str, int)):
                chunks = [chunks]
            chunk_list = []
            for c in chunks:
                name = f"TRAIN_{int(c)}" if isinstance(c, (int, np.integer)) else str(c)
                if not _TRACKINGNET_CHUNK.match(name):
                    raise ValueError(f"TrackingNet chunk must be 'TRAIN_<k>', 'TEST' or an integer k, got {c!r}")
                if name not in chunk_list:
                    chunk_list.append(name)
            if not chunk_list:
                raise ValueError("TrackingNet: chunks is empty")
            if "TEST" in chunk_list and len(chunk_list) > 1:
                raise ValueError(f"TrackingNet: TEST cannot be mixed with training chunks, got {chunk_list}")
        self.chunks = chunk_list
        self.fully_annotated = chunk_list != ["TEST"]

        names = []
        for chunk in chunk_list:
            chunk_dir = self.root / chunk
            for sub in (chunk_dir, chunk_dir / "anno", chunk_dir / "frames"):
                if not sub.is_dir():
                    raise FileNotFoundError(
                        f"TrackingNet chunk folder not found: {sub}; expected layout: {_TRACKINGNET_LAYOUT}"
                    )
            with os.scandir(chunk_dir / "anno") as entries:
                seqs = sorted(e.name[:-4] for e in entries if e.name.endswith(".txt") and e.is_file())
            if not seqs:
                raise FileNotFoundError(
                    f"no TrackingNet annotation files (*.txt) in {chunk_dir / 'anno'}; expected layout: "
                    f"{_TRACKINGNET_LAYOUT}"
                )
            names.extend(f"{chunk}/{s}" for s in seqs)
        self._set_names(names)

    def _load(self, name: str) -> Sequence:
        chunk, _, video = name.partition("/")
        anno = self.root / chunk / "anno" / f"{video}.txt"
        boxes = _read_boxes(anno)
        frame_dir = self.root / chunk / "frames" / video
        if not frame_dir.is_dir():
            raise FileNotFoundError(f"sequence {name}: frame folder not found: {frame_dir}")
        meta: dict[str, Any] = {"dataset": self.name, "chunk": chunk, "video": video}
        if chunk == "TEST":
            n = _count_jpgs(frame_dir)
            if n == 0:
                raise FileNotFoundError(f"sequence {name}: no frame files (*.jpg) in {frame_dir}")
            frames = [frame_dir / f"{i}.jpg" for i in range(n)]
            return Sequence(name, frames, boxes[:1], np.ones(1, dtype=bool), meta)
        n = len(boxes)
        _check_count(name, frame_dir, n, f"lines in {anno}")
        visible = (boxes[:, 2] > 0) & (boxes[:, 3] > 0)
        return Sequence(name, [frame_dir / f"{i}.jpg" for i in range(n)], boxes, visible, meta)


# ------------------------------------------------------------------------------------------------------ COCO
_COCO_LAYOUT = "<root>/annotations/instances_<split>.json and <root>/<split>/<file_name> (e.g. 000000000009.jpg)"


def _drop_segmentation(obj: dict[str, Any]) -> dict[str, Any]:
    """``json`` object hook: polygons / RLEs are most of the file and unused; free them while parsing."""
    obj.pop("segmentation", None)
    return obj


class Coco(TrackingDataset):
    """COCO 2017 (``root/annotations/instances_<split>.json``, images in ``root/<split>/``) as one-frame sequences.

    Every non-crowd annotation with ``w > 0 and h > 0`` is a sequence of one frame (template and search are then
    drawn from the same image, as OSTrack does for COCO): ``boxes`` [1, 4] (COCO's ``bbox`` is already x, y, w,
    h), ``visible`` ``[True]``, meta with the annotation, image and category ids and the category name. The
    sequence name is the annotation id as a string (unique in COCO), sequences are in annotation-id order.

    The JSON is parsed once, when the reader is built (train2017: ~450 MB, tens of seconds), and only the needed
    fields are kept, in numpy arrays (cheap to share with forked DataLoader workers).
    """

    name = "coco"

    def __init__(self, root: str | Path, split: str = "train2017") -> None:
        super().__init__()
        self.root = Path(root)
        self.split = split
        if not self.root.is_dir():
            raise FileNotFoundError(f"COCO root not found: {self.root}; expected layout: {_COCO_LAYOUT}")
        self.annotation_file = self.root / "annotations" / f"instances_{split}.json"
        if not self.annotation_file.is_file():
            raise FileNotFoundError(
                f"COCO annotation file not found: {self.annotation_file}; expected layout: {_COCO_LAYOUT}"
            )
        self.image_dir = self.root / split
        if not self.image_dir.is_dir():
            raise FileNotFoundError(f"COCO image folder not found: {self.image_dir}; expected layout: {_COCO_LAYOUT}")
        path = self.annotation_file
        try:
            with open(path, "rb") as f:
                data = json.load(f, object_hook=_drop_segmentation)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: invalid JSON: {e}") from None
        if not isinstance(data, dict) or not isinstance(data.get("images"), list):
            raise ValueError(f"{path}: expected a COCO instances file with 'images' and 'annotations' lists")
        if not isinstance(data.get("annotations"), list):
            raise ValueError(f"{path}: expected a COCO instances file with 'images' and 'annotations' lists")

        try:
            images = data["images"]
            image_pos = {int(im["id"]): i for i, im in enumerate(images)}
            self._image_ids = np.array([int(im["id"]) for im in images], dtype=np.int64)
            self._file_names = np.array([str(im["file_name"]) for im in images], dtype=str)
            self._image_sizes = np.array(
                [(int(im.get("width", -1)), int(im.get("height", -1))) for im in images], dtype=np.int64
            ).reshape(-1, 2)
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{path}: malformed 'images' entry ({type(e).__name__}: {e})") from None
        self.categories: dict[int, str] = {
            int(c["id"]): str(c.get("name", c["id"])) for c in data.get("categories") or []
        }

        ann_ids, img_idx, boxes, cats = [], [], [], []
        for ann in data["annotations"]:
            ann_id = ann.get("id", "?") if isinstance(ann, dict) else "?"
            try:
                if ann.get("iscrowd", 0):
                    continue
                bbox = [float(v) for v in ann["bbox"]]
                if len(bbox) != 4 or not all(math.isfinite(v) for v in bbox):
                    raise ValueError(f"bbox must be 4 finite numbers, got {ann['bbox']!r}")
                if not (bbox[2] > 0 and bbox[3] > 0):
                    continue
                image_id = int(ann["image_id"])
                if image_id not in image_pos:
                    raise ValueError(f"image_id {image_id} is not in 'images'")
                ann_ids.append(int(ann["id"]))
                img_idx.append(image_pos[image_id])
                boxes.append(bbox)
                cats.append(int(ann.get("category_id", -1)))
            except (KeyError, TypeError, ValueError, AttributeError) as e:
                raise ValueError(f"{path}: malformed annotation id {ann_id}: {type(e).__name__}: {e}") from None
        del data
        order = np.argsort(np.asarray(ann_ids, dtype=np.int64), kind="stable")
        self._ann_ids = np.asarray(ann_ids, dtype=np.int64)[order]
        if len(self._ann_ids) > 1 and (np.diff(self._ann_ids) == 0).any():
            dup = int(self._ann_ids[1:][np.diff(self._ann_ids) == 0][0])
            raise ValueError(f"{path}: annotation id {dup} occurs more than once")
        self._ann_image = np.asarray(img_idx, dtype=np.int64)[order]
        self._ann_boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)[order]
        self._ann_cats = np.asarray(cats, dtype=np.int64)[order]
        if len(self._ann_ids) == 0:
            raise ValueError(f"{path}: no non-crowd annotation with a positive-area bbox")

    # One sequence per annotation: names are derived from the id array instead of a list + dict of strings.
    def __len__(self) -> int:
        return len(self._ann_ids)

    @property
    def sequence_names(self) -> list[str]:
        return [str(i) for i in self._ann_ids.tolist()]

    def get_sequence(self, i_or_name: int | str) -> Sequence:
        if isinstance(i_or_name, str):
            pos = -1
            if i_or_name.isdigit() and str(int(i_or_name)) == i_or_name:  # canonical: "42", not "042" or " 42"
                pos = int(np.searchsorted(self._ann_ids, int(i_or_name)))
                if pos >= len(self._ann_ids) or self._ann_ids[pos] != int(i_or_name):
                    pos = -1
            if pos < 0:
                raise KeyError(f"{self.name}: no sequence named {i_or_name!r}")
        else:
            pos = int(i_or_name)
            if not -len(self) <= pos < len(self):
                raise IndexError(f"{self.name}: sequence index {pos} out of range ({len(self)} sequences)")
            pos %= len(self)
        return self._load_pos(pos)

    def _load(self, name: str) -> Sequence:
        return self.get_sequence(name)

    def _load_pos(self, pos: int) -> Sequence:
        img = int(self._ann_image[pos])
        cat = int(self._ann_cats[pos])
        meta = {
            "dataset": self.name,
            "split": self.split,
            "annotation_id": int(self._ann_ids[pos]),
            "image_id": int(self._image_ids[img]),
            "category_id": cat,
            "object_class": self.categories.get(cat),
            "image_size": tuple(int(v) for v in self._image_sizes[img]),  # (width, height) from the JSON
        }
        frames = [self.image_dir / str(self._file_names[img])]
        return Sequence(str(self._ann_ids[pos]), frames, self._ann_boxes[pos : pos + 1].copy(), np.ones(1, bool), meta)


# ------------------------------------------------------------------------------------------------- registry
#: Dataset readers by name, for :func:`build_dataset`.
DATASETS: dict[str, type[TrackingDataset]] = {
    "got10k": Got10k,
    "lasot": Lasot,
    "trackingnet": TrackingNet,
    "coco": Coco,
}


def _registry_key(name: str) -> str:
    return name.strip().lower().replace("-", "").replace("_", "")


def build_dataset(name: str, root: str | Path, split: str | None = None, **kwargs: Any) -> TrackingDataset:
    """A reader by registry name (``DATASETS``; case, ``-`` and ``_`` ignored: ``"GOT-10k"`` works).

    ``split`` (``None`` = the training split) maps to each reader's own argument:

    * ``got10k``: ``"train"`` (default), ``"val"``, ``"test"``;
    * ``lasot``: ``"train"`` (default), ``"test"``, ``"all"``;
    * ``trackingnet``: ``"train"`` (default) = every ``TRAIN_<k>`` chunk present, ``"test"`` = ``TEST``, or one
      chunk name (``"TRAIN_3"``); ``chunks=`` in ``kwargs`` instead selects chunks directly (then no split);
    * ``coco``: ``"train"`` / ``None`` -> ``"train2017"``, ``"val"`` -> ``"val2017"``, anything else (e.g.
      ``"train2014"``) is used as the folder / annotation-file split name.

    ``kwargs`` go to the reader (``Lasot(split_file=..., allow_missing=...)``). Unknown name: ValueError listing
    the known ones; missing root: FileNotFoundError naming it.
    """
    key = _registry_key(str(name))
    if key not in DATASETS:
        raise ValueError(f"unknown tracking dataset {name!r}; known: {', '.join(sorted(DATASETS))}")
    root_path = Path(root)
    if not root_path.is_dir():
        raise FileNotFoundError(f"{key} root not found: {root_path}")
    if key in ("got10k", "lasot"):
        return DATASETS[key](root_path, split or "train", **kwargs)
    if key == "trackingnet":
        if split is not None and kwargs.get("chunks") is not None:
            raise ValueError(f"trackingnet: give split ({split!r}) or chunks ({kwargs['chunks']!r}), not both")
        if split is not None:
            s = split.strip()
            if s.lower() == "train":
                kwargs["chunks"] = None
            elif s.lower() == "test":
                kwargs["chunks"] = ["TEST"]
            elif _TRACKINGNET_CHUNK.match(s):
                kwargs["chunks"] = [s]
            else:
                raise ValueError(
                    f"trackingnet split must be 'train', 'test' or a chunk name 'TRAIN_<k>', got {split!r}"
                )
        return DATASETS[key](root_path, **kwargs)
    coco_split = {None: "train2017", "train": "train2017", "val": "val2017"}.get(split, split)
    return DATASETS[key](root_path, coco_split, **kwargs)
