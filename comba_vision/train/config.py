"""Training configuration: one dataclass, loaded from YAML, every key overridable on the command line."""
from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from typing import Any

import yaml


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads 5e-4 (no dot) as a string; read it as a float, as YAML 1.2 and Python do."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                |[-+]?\.(?:inf|Inf|INF)
                |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def _yaml(text: str):
    return yaml.load(text, Loader=_Loader)


@dataclass
class TrainConfig:
    # model
    model: str = "comba_tiny"
    model_kwargs: dict = field(default_factory=dict)
    img_size: int | None = None
    num_classes: int | None = None          # default: the number of class folders
    drop_path: float = 0.1
    drop: float = 0.0
    grad_checkpointing: bool = False
    compile: bool = False
    cuda_graph: bool = False                  # capture the whole training step as one CUDA graph (train.step)
    # data
    data_dir: str | None = None
    dataset: str = ""                         # "" (ImageFolder / tar shards) or "sklearn-digits" (built-in demo)
    train_split: str = "train"
    val_split: str = "val"
    workers: int = 8
    pin_mem: bool = True
    # optimisation (DeiT recipe)
    epochs: int = 300
    batch_size: int = 128                     # per process
    accum_steps: int = 1
    lr: float | None = None                   # default: lr_base * global_batch / lr_base_size
    lr_base: float = 1e-3
    lr_base_size: int = 1024
    opt: str = "adamw"
    opt_eps: float = 1e-8
    opt_betas: list = field(default_factory=lambda: [0.9, 0.999])
    momentum: float = 0.9
    weight_decay: float = 0.05
    sched: str = "cosine"
    warmup_epochs: int = 5
    warmup_lr: float = 1e-6
    min_lr: float = 1e-5
    cooldown_epochs: int = 0
    clip_grad: float | None = None
    # augmentation and regularisation
    smoothing: float = 0.1
    mixup: float = 0.8
    cutmix: float = 1.0
    mixup_prob: float = 1.0
    mixup_switch_prob: float = 0.5
    mixup_mode: str = "batch"
    aa: str | None = "rand-m9-mstd0.5-inc1"
    reprob: float = 0.25
    remode: str = "pixel"
    recount: int = 1
    scale: list = field(default_factory=lambda: [0.08, 1.0])
    ratio: list = field(default_factory=lambda: [3 / 4, 4 / 3])
    hflip: float = 0.5
    color_jitter: float = 0.3
    aug_repeats: int = 3                      # repeated augmentation (distributed runs)
    train_interpolation: str = "bicubic"
    interpolation: str = "bicubic"
    crop_pct: float = 0.875
    # EMA
    model_ema: bool = True
    model_ema_decay: float = 0.99996
    # precision
    amp: bool = True                          # autocast on CUDA (never on the CPU)
    amp_dtype: str = "bfloat16"
    # run control and logging
    seed: int = 42
    output: str = "output"
    experiment: str = ""
    log_interval: int = 50
    max_steps_per_epoch: int | None = None    # cap for smoke tests
    stop_after_epochs: int | None = None      # leave after this many epochs in this invocation (resume later)
    min_val_top1: float | None = None         # fail the run if the final val top-1 is below this

    def __post_init__(self) -> None:
        for key in ("epochs", "batch_size", "accum_steps", "lr_base_size", "log_interval"):
            if getattr(self, key) <= 0:
                raise ValueError(f"config key {key!r} must be positive, got {getattr(self, key)}")
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"config key 'lr' must be positive or null (scaled from lr_base), got {self.lr}")
        if self.clip_grad is not None and not self.clip_grad > 0:
            raise ValueError(f"config key 'clip_grad' must be positive or null (no clipping), got {self.clip_grad}")
        for key in ("mixup", "cutmix", "reprob", "hflip", "drop_path", "smoothing"):
            if getattr(self, key) < 0:
                raise ValueError(f"config key {key!r} must be >= 0, got {getattr(self, key)}")


FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}


# ------------------------------------------------------------------ generic dataclass loading (shared with tracking)
def dataclass_fields(cls: type) -> dict[str, dataclasses.Field]:
    """``{name: Field}`` of a config dataclass."""
    return {f.name: f for f in dataclasses.fields(cls)}


def check_keys(d: dict[str, Any], fields: dict[str, dataclasses.Field], where: str) -> None:
    """ValueError naming the keys of ``d`` that are not config fields, and the known keys."""
    unknown = sorted(set(d) - set(fields))
    if unknown:
        raise ValueError(f"unknown config key(s) {unknown} in {where}; known keys: {sorted(fields)}")


def typed_value(key: str, value: Any, fields: dict[str, dataclasses.Field]) -> Any:
    """Checks a value against the field's annotation (ints are accepted for floats)."""
    ann = str(fields[key].type)
    if value is None:
        if "None" not in ann:
            raise ValueError(f"config key {key!r} may not be null")
        return value
    kinds = {"float": (int, float), "int": (int,), "bool": (bool,), "str": (str,), "dict": (dict,), "list": (list,)}
    allowed = tuple(t for name, ts in kinds.items() if re.search(rf"\b{name}\b", ann) for t in ts)
    if allowed and (not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed)):
        raise ValueError(f"config key {key!r} expects {ann}, got {value!r} ({type(value).__name__})")
    if "float" in ann and "int" not in ann and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def load_dataclass_config(cls: type, path: str | None, overrides: dict[str, Any] | None = None) -> Any:
    """Reads a YAML file (keys must be fields of the dataclass ``cls``), then applies overrides."""
    fields = dataclass_fields(cls)
    values: dict[str, Any] = {}
    if path is not None:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"config file not found: {path}")
        with open(path) as f:
            loaded = _yaml(f.read()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"config {path} must be a mapping of keys to values")
        check_keys(loaded, fields, path)
        values.update(loaded)
    if overrides:
        check_keys(overrides, fields, "the command line")
        values.update(overrides)
    return cls(**{k: typed_value(k, v, fields) for k, v in values.items()})


def parse_dataclass_overrides(cls: type, tokens: list[str]) -> dict[str, Any]:
    """``--batch-size 64 --model-kwargs '{img_size: 32}'`` -> {"batch_size": 64, ...} for the fields of ``cls``;
    values are YAML."""
    fields = dataclass_fields(cls)
    out: dict[str, Any] = {}
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if not tok.startswith("--"):
            raise ValueError(f"unexpected argument {tok!r}; overrides are --key value")
        key = tok[2:]
        if "=" in key:
            key, val = key.split("=", 1)
            i += 1
        elif i + 1 < len(tokens) and not tokens[i + 1].startswith("--"):
            val = tokens[i + 1]
            i += 2
        else:
            val, i = "true", i + 1
        key = key.replace("-", "_")
        if key not in fields:
            raise ValueError(f"unknown config key {key!r} on the command line; known keys: {sorted(fields)}")
        out[key] = _yaml(val)
    return out


# ------------------------------------------------------------------ TrainConfig
def _check_keys(d: dict[str, Any], where: str):
    check_keys(d, FIELDS, where)


def load_config(path: str | None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Reads a YAML file (keys must be TrainConfig fields), then applies overrides."""
    return load_dataclass_config(TrainConfig, path, overrides)


def _typed(key: str, value: Any) -> Any:
    """Checks a value against the field's annotation (ints are accepted for floats)."""
    return typed_value(key, value, FIELDS)


def parse_overrides(tokens: list[str]) -> dict[str, Any]:
    """``--batch-size 64 --model-kwargs '{img_size: 32}'`` -> {"batch_size": 64, ...}; values are YAML."""
    return parse_dataclass_overrides(TrainConfig, tokens)


def to_yaml(cfg: TrainConfig) -> str:
    return yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False)
