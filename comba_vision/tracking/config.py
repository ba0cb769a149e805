"""Tracker training configuration: one dataclass, loaded from YAML, every key overridable on the command line.

Same machinery as the ImageNet trainer (``comba_vision.train.config``): YAML 1.2 floats, an unknown key is an
error (in the file or on the command line), values are type-checked against the field annotations, and
``--key value`` overrides are parsed as YAML (``--epochs 10``, ``--backbone-kwargs '{depth: 2}'``).

Training data are a list of ``{name, root, split, ratio}`` entries (``datasets``); any further key of an entry is
passed to the reader (``comba_vision.tracking.datasets.build_dataset``, e.g. ``split_file`` for LaSOT). Roots
are never hard-coded: give them in the YAML entry, or on the command line as ``--data-root-<name> PATH``
(``--data-root-got10k /data/got10k``), which wins over the file and is stored in ``data_roots``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import yaml

from ..train.config import load_dataclass_config, parse_dataclass_overrides

__all__ = [
    "DatasetSpec",
    "TrackConfig",
    "load_track_config",
    "parse_track_overrides",
    "resolve_datasets",
    "track_config_to_yaml",
]

_ENTRY_KEYS = ("name", "root", "split", "ratio")
DATA_ROOT_FLAG = "--data-root-"


@dataclass
class TrackConfig:
    """Every setting of a tracker training run (defaults: OSTrack's GOT-10k recipe, see the shipped YAMLs)."""

    # model
    backbone: str = "comba_tiny"
    backbone_kwargs: dict = field(default_factory=dict)  # passed to timm.create_model (e.g. {depth: 2})
    backbone_checkpoint: str | None = None  # tools/train_imagenet.py checkpoint (best.pth / last.pth)
    drop_path: float = 0.1  # OSTrack DROP_PATH_RATE
    head_channels: int = 256  # OSTrack HEAD.NUM_CHANNELS
    token_type_embed: bool = True
    grad_checkpointing: bool = False
    template_size: int = 128
    search_size: int = 256
    template_factor: float = 2.0
    search_factor: float = 4.0
    # data
    datasets: list = field(default_factory=list)  # [{name, root, split, ratio}, ...]
    data_roots: dict = field(default_factory=dict)  # {name: root}; set by --data-root-<name>, wins over entries
    samples_per_epoch: int = 60000
    max_gap: int = 200  # OSTrack MAX_SAMPLE_INTERVAL
    template_center_jitter: float = 0.0
    template_scale_jitter: float = 0.0
    search_center_jitter: float = 3.0
    search_scale_jitter: float = 0.25
    gray_prob: float = 0.05
    brightness_jitter: float = 0.2
    flip_prob: float = 0.5
    workers: int = 10
    pin_mem: bool = True
    # optimisation
    epochs: int = 100
    batch_size: int = 32  # per process
    opt: str = "adamw"
    opt_eps: float = 1e-8
    opt_betas: list = field(default_factory=lambda: [0.9, 0.999])
    lr: float = 4e-4  # head lr; the backbone gets lr * backbone_lr_scale
    backbone_lr_scale: float = 0.1
    weight_decay: float = 1e-4
    sched: str = "step"  # timm scheduler name; "step" drops by lr_drop_rate at lr_drop_epoch
    lr_drop_epoch: int | None = None  # default: 80% of the epochs
    lr_drop_rate: float = 0.1
    warmup_epochs: int = 0
    warmup_lr: float = 1e-6
    min_lr: float = 0.0
    clip_grad: float | None = 0.1
    focal_weight: float = 1.0
    giou_weight: float = 2.0
    l1_weight: float = 5.0
    # precision
    amp: bool = True  # autocast on CUDA (never on the CPU)
    amp_dtype: str = "bfloat16"
    # run control and logging
    seed: int = 42
    output: str = "output"
    experiment: str = ""  # default: <backbone>_track
    log_interval: int = 50
    max_steps_per_epoch: int | None = None  # cap for smoke tests
    stop_after_epochs: int | None = None  # leave after this many epochs in this invocation (resume later)

    def __post_init__(self) -> None:
        for key in ("template_size", "search_size", "samples_per_epoch", "epochs", "batch_size", "log_interval"):
            if getattr(self, key) <= 0:
                raise ValueError(f"config key {key!r} must be positive, got {getattr(self, key)}")
        if self.workers < 0:
            raise ValueError(f"config key 'workers' must be >= 0, got {self.workers}")
        if self.amp_dtype not in ("bfloat16", "float16"):
            raise ValueError(f"config key 'amp_dtype' must be 'bfloat16' or 'float16', got {self.amp_dtype!r}")
        for key in ("template_factor", "search_factor", "lr"):
            if not getattr(self, key) > 0:
                raise ValueError(f"config key {key!r} must be positive, got {getattr(self, key)}")
        if self.clip_grad is not None and not self.clip_grad > 0:
            raise ValueError(f"config key 'clip_grad' must be positive or null (no clipping), got {self.clip_grad}")
        for key in ("gray_prob", "flip_prob"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ValueError(f"config key {key!r} is a probability in [0, 1], got {getattr(self, key)}")
        for key in ("brightness_jitter", "max_gap", "backbone_lr_scale", "weight_decay",
                    "template_center_jitter", "template_scale_jitter", "search_center_jitter", "search_scale_jitter"):
            if getattr(self, key) < 0:
                raise ValueError(f"config key {key!r} must be >= 0, got {getattr(self, key)}")
        if self.lr_drop_epoch is not None and self.lr_drop_epoch <= 0:
            raise ValueError(f"config key 'lr_drop_epoch' must be positive, got {self.lr_drop_epoch}")
        for i, entry in enumerate(self.datasets):
            _check_entry(i, entry)
        names = {_key(e["name"]) for e in self.datasets}
        for name, root in self.data_roots.items():
            if _key(name) not in names:
                known = ", ".join(str(e["name"]) for e in self.datasets) or "none"
                raise ValueError(
                    f"a root is given for dataset {name!r} ({DATA_ROOT_FLAG}{name}) but no training dataset of "
                    f"that name is configured (datasets: {known})"
                )
            if not isinstance(root, str) or not root:
                raise ValueError(f"the root of dataset {name!r} must be a path, got {root!r}")

    @property
    def resolved_lr_drop_epoch(self) -> int:
        """The epoch at which the step schedule drops the learning rate (80% of the epochs by default)."""
        return self.lr_drop_epoch if self.lr_drop_epoch is not None else max(1, int(round(0.8 * self.epochs)))

    @property
    def experiment_name(self) -> str:
        return self.experiment or f"{self.backbone}_track"


@dataclass(frozen=True)
class DatasetSpec:
    """One resolved training dataset: registry name, root, split, sampling ratio and extra reader arguments."""

    name: str
    root: str
    split: str | None
    ratio: float
    kwargs: dict[str, Any]


def _key(name: Any) -> str:
    """Dataset names compare like the registry's: case, ``-`` and ``_`` ignored."""
    return str(name).strip().lower().replace("-", "").replace("_", "")


def _check_entry(i: int, entry: Any) -> None:
    where = f"datasets[{i}]"
    if not isinstance(entry, dict):
        raise ValueError(f"{where} must be a mapping {{name, root, split, ratio}}, got {entry!r}")
    if not isinstance(entry.get("name"), str) or not entry["name"]:
        raise ValueError(f"{where} needs a dataset name (got {entry!r}); e.g. {{name: got10k, split: train}}")
    ratio = entry.get("ratio", 1)
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not ratio > 0:
        raise ValueError(f"{where} ({entry['name']}): ratio must be a positive number, got {ratio!r}")
    for key in ("root", "split"):
        if entry.get(key) is not None and not isinstance(entry[key], str):
            raise ValueError(f"{where} ({entry['name']}): {key} must be a string, got {entry[key]!r}")


def resolve_datasets(cfg: TrackConfig) -> list[DatasetSpec]:
    """The training datasets with their roots (``data_roots`` wins over the entry's ``root``).

    Raises:
        ValueError: no dataset configured, or one without a root (the message names the dataset and the
            ``--data-root-<name>`` override to use).
    """
    if not cfg.datasets:
        raise ValueError(
            "no training datasets configured: set 'datasets' in the config, e.g. "
            "[{name: got10k, root: null, split: train, ratio: 1}], and give the root with --data-root-got10k PATH"
        )
    roots = {_key(k): v for k, v in cfg.data_roots.items()}
    specs = []
    for i, entry in enumerate(cfg.datasets):
        name = entry["name"]
        root = roots.get(_key(name)) or entry.get("root")
        if not root:
            raise ValueError(
                f"training dataset {name!r} (datasets[{i}]) has no root: pass {DATA_ROOT_FLAG}{name} PATH on the "
                f"command line (or set root in the config's datasets entry)"
            )
        extra = {k: v for k, v in entry.items() if k not in _ENTRY_KEYS}
        specs.append(DatasetSpec(name, str(root), entry.get("split"), float(entry.get("ratio", 1)), extra))
    return specs


def parse_track_overrides(tokens: list[str]) -> dict[str, Any]:
    """Command-line overrides: ``--key value`` for any TrackConfig field (values are YAML), plus
    ``--data-root-<name> PATH`` (or ``--data-root-<name>=PATH``), collected into ``data_roots``."""
    roots: dict[str, str] = {}
    rest: list[str] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.replace("_", "-").startswith(DATA_ROOT_FLAG):
            name, sep, value = tok[len(DATA_ROOT_FLAG) :].partition("=")
            if not sep:
                if i + 1 >= len(tokens) or tokens[i + 1].startswith("--"):
                    raise ValueError(f"{tok} needs a path: {tok} PATH")
                value = tokens[i + 1]
                i += 1
            if not name:
                raise ValueError(f"{tok}: name the dataset, e.g. {DATA_ROOT_FLAG}got10k PATH")
            roots[name] = value
        else:
            rest.append(tok)
        i += 1
    out = parse_dataclass_overrides(TrackConfig, rest)
    if roots:
        out["data_roots"] = {**(out.get("data_roots") or {}), **roots}
    return out


def load_track_config(path: str | None, overrides: dict[str, Any] | None = None) -> TrackConfig:
    """Reads a YAML file (keys must be TrackConfig fields), then applies overrides (``data_roots`` merge)."""
    overrides = dict(overrides or {})
    if path is not None and "data_roots" in overrides:
        base = load_dataclass_config(TrackConfig, path)
        overrides["data_roots"] = {**base.data_roots, **(overrides["data_roots"] or {})}
    return load_dataclass_config(TrackConfig, path, overrides)


def track_config_to_yaml(cfg: TrackConfig) -> str:
    return yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False)
