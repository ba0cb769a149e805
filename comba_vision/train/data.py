"""Data for training: layout checks, the built-in digits demo set, timm datasets and loaders."""
from __future__ import annotations

import logging
import multiprocessing as mp
import os
from pathlib import Path

import numpy as np
from PIL import Image
from timm.data import ImageDataset

IMG_EXT = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".JPEG")
LAYOUT_HELP = ("expected an ImageFolder tree DATA/{split}/<class>/<image> (or tar shards DATA/{split}.tar "
               "holding <class>/<image> members) for the train and val splits")


def cache_dir() -> Path:
    return Path(os.environ.get("COMBA_VISION_CACHE", Path.home() / ".cache" / "comba_vision"))


def write_digits_imagefolder(root: Path | None = None, size: int = 32, val_fraction: float = 0.2,
                             seed: int = 0) -> Path:
    """scikit-learn's 1797 handwritten digits (8x8) as RGB PNGs of size x size in train/ and val/ class
    folders; written once (a marker file records completion)."""
    from sklearn.datasets import load_digits

    root = Path(root) if root is not None else cache_dir() / f"digits_{size}px"
    if (root / ".complete").exists():
        return root
    digits = load_digits()
    rng = np.random.default_rng(seed)
    for cls in range(10):
        idx = np.flatnonzero(digits.target == cls)
        rng.shuffle(idx)
        n_val = int(round(len(idx) * val_fraction))
        for split, members in (("val", idx[:n_val]), ("train", idx[n_val:])):
            d = root / split / str(cls)
            d.mkdir(parents=True, exist_ok=True)
            for i in members:
                img = (digits.images[i] / 16.0 * 255).astype(np.uint8)
                Image.fromarray(img).resize((size, size), Image.BILINEAR).convert("RGB").save(d / f"{i:04d}.png")
    (root / ".complete").write_text("ok\n")
    return root


def _classes(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir() if p.is_dir())


def check_layout(data_dir: str | None, splits: tuple[str, ...]) -> None:
    """Raises a clear error unless every split is a folder of class folders holding images (or a tar)."""
    if not data_dir:
        raise ValueError("no data directory given (--data-dir); " + LAYOUT_HELP.format(split="<split>"))
    root = Path(data_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"data directory {root} does not exist; " + LAYOUT_HELP.format(split="<split>"))
    class_sets = {}
    for split in splits:
        folder, tar = root / split, root / f"{split}.tar"
        if tar.is_file() and not folder.exists():
            continue
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder} is missing; " + LAYOUT_HELP.format(split=split))
        classes = _classes(folder)
        if not classes:
            raise ValueError(f"{folder} holds no class folders; " + LAYOUT_HELP.format(split=split))
        empty = [c for c in classes if not any(f.suffix in IMG_EXT for f in (folder / c).rglob("*") if f.is_file())]
        if empty:
            raise ValueError(f"class folder(s) without images in {folder}: {empty[:5]}; "
                             + LAYOUT_HELP.format(split=split))
        class_sets[split] = classes
    if len(class_sets) == 2:
        a, b = class_sets.values()
        if a != b:
            raise ValueError(f"train and val have different class folders: only in one of them "
                             f"{sorted(set(a) ^ set(b))[:10]}")


_TIMM_LOG = logging.getLogger("timm.data.dataset")  # timm's dataset logger, whose skip messages SkipCounter counts


class SkipCounter(logging.Handler):
    """Counts the samples timm's ImageDataset skips as unreadable (it logs 'Skipped sample ...'), in the
    main process and in forked loader workers alike (shared counter)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.count = mp.Value("i", 0)

    def emit(self, record):
        if str(record.msg).startswith("Skipped sample"):
            with self.count.get_lock():
                self.count.value += 1

    def install(self):
        _TIMM_LOG.addHandler(self)
        return self

    @property
    def value(self) -> int:
        return self.count.value

    def reset(self) -> None:
        with self.count.get_lock():
            self.count.value = 0


class DecodingImageDataset(ImageDataset):
    """timm's ImageDataset with each image decoded inside the retry loop, so that an image that opens but fails to
    decode (a truncated file) is skipped and counted like one that does not open. timm 1.0.31 decodes there
    itself; 1.0.29 (the GPU machine's) decoded after the loop, and one truncated image ended the run."""

    def __getitem__(self, index):
        retries = getattr(self, "_max_retries", 20)
        for _ in range(retries):
            try:
                img, target, *features = self.reader[index]
                img = Image.open(img).convert(self.input_img_mode)  # convert decodes the pixels
                break
            except OSError as e:
                _TIMM_LOG.warning(f"Skipped sample (index {index}). {e}")  # as timm logs it (SkipCounter counts it)
                index = (index + 1) % len(self.reader)
        else:
            raise RuntimeError(f"failed to load {retries} consecutive samples")
        if self.transform is not None:
            img = self.transform(img)
        if target is None:
            target = -1
        elif self.target_transform is not None:
            target = self.target_transform(target)
        if getattr(self, "additional_features", None) is None:
            return img, target
        return img, target, *features


def decoding_dataset(ds):
    """``ds`` as a DecodingImageDataset (in place) where it is a plain timm ImageDataset of decoded images; any
    other dataset as it is."""
    if type(ds) is ImageDataset and not ds.load_bytes and ds.input_img_mode:
        ds.__class__ = DecodingImageDataset
    return ds
