"""Readers for the official on-disk layouts of GOT-10k and LaSOT.

Both readers list their sequences when built and parse one sequence's annotation files only when it is asked
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
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

__all__ = [
    "LASOT_TEST_SEQUENCES",
    "Got10k",
    "Lasot",
    "Sequence",
    "TrackingDataset",
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
