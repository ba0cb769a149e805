"""Training loop of the one-stream tracker (OSTrack's recipe) on the ImageNet trainer's machinery.

    from comba_vision.tracking.config import load_track_config
    from comba_vision.tracking.train import train_tracker
    cfg = load_track_config("configs/tracking/got10k_comba_tiny.yaml", {"data_roots": {"got10k": "/data/got10k"}})
    metrics = train_tracker(cfg)                       # or train_tracker(cfg, resume="output/.../last.pth")

Reused from ``comba_vision.train``: the YAML config machinery, ``setup_distributed`` (torchrun / DDP),
``atomic_save``, ``rng_state`` / ``set_rng_state`` (exact resume), ``NonFiniteLossError``, ``weights_digest``
(ranks agree at the end) and timm's optimizer / scheduler factories.

One epoch is ``samples_per_epoch`` pairs of :class:`~comba_vision.tracking.processing.TrackingPairDataset`,
whose item ``i`` is a pure function of ``(seed, epoch, i)``; each of the ``world`` processes takes the indices
``rank, rank + world, ...`` (distinct across ranks, the same number on every rank) in batches of ``batch_size``,
so the global batch is ``batch_size x world``. The model (backbone at ``lr x backbone_lr_scale``, see
``model.param_groups``) is trained with ``TrackingLoss`` (focal + GIoU + L1, weights 1 / 2 / 5), bf16 autocast
on CUDA, gradient-norm clipping and a per-epoch step (or any timm) learning-rate schedule. Every epoch writes
``summary.csv``, TensorBoard scalars and an atomic ``last.pth`` (model, optimizer, scheduler, scaler, epoch,
step, per-rank RNG state, config); ``resume`` continues from it exactly. A non-finite loss (or gradient norm)
stops the run with :class:`~comba_vision.train.trainer.NonFiniteLossError` before the optimizer step, leaving
the last checkpoint as it was.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import random
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2
from torch.utils.data import DataLoader, Sampler

from ..train.trainer import (
    NonFiniteLossError,
    _all_reduce,
    atomic_save,
    check_ranks_agree,
    clip_and_step,
    load_checkpoint,
    rng_state,
    set_rng_state,
    setup_distributed,
)
from .config import TrackConfig, resolve_datasets, track_config_to_yaml
from .datasets import TrackingDataset, build_dataset
from .losses import TrackingLoss
from .model import OneStreamTracker, param_groups
from .processing import TrackingPairDataset

__all__ = [
    "NonFiniteLossError",
    "RankSampler",
    "build_model",
    "build_pair_dataset",
    "build_training_datasets",
    "train_tracker",
]

log = logging.getLogger("comba_vision.tracking.train")

LOSS_PARTS = ("total", "focal", "giou", "l1", "iou")


class RankSampler(Sampler[int]):
    """Indices ``rank, rank + world, ...`` of ``num_samples``: each rank gets ``num_samples // world`` distinct
    indices (the remainder is dropped so that every rank runs the same number of steps)."""

    def __init__(self, num_samples: int, rank: int = 0, world: int = 1) -> None:
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} outside 0..{world - 1}")
        self.num_samples, self.rank, self.world = int(num_samples), int(rank), int(world)
        self.per_rank = self.num_samples // self.world

    def __iter__(self):
        return iter(range(self.rank, self.per_rank * self.world, self.world))

    def __len__(self) -> int:
        return self.per_rank


# ------------------------------------------------------------------ building blocks
def build_training_datasets(cfg: TrackConfig) -> list[tuple[TrackingDataset, float]]:
    """``[(reader, ratio), ...]`` for the configured datasets (``build_dataset`` by name).

    Raises ValueError for a dataset without a root (naming the ``--data-root-<name>`` override),
    FileNotFoundError for a root that is not on disk; both name the dataset.
    """
    out = []
    for spec in resolve_datasets(cfg):
        try:
            ds = build_dataset(spec.name, spec.root, spec.split, **spec.kwargs)
        except FileNotFoundError as e:
            raise FileNotFoundError(f"training dataset {spec.name!r} (root {spec.root}): {e}") from e
        except (TypeError, ValueError) as e:
            raise ValueError(f"training dataset {spec.name!r} (root {spec.root}, split {spec.split}): {e}") from e
        if not getattr(ds, "fully_annotated", True):
            raise ValueError(f"training dataset {spec.name!r}, split {spec.split!r}, is not annotated on every frame")
        out.append((ds, spec.ratio))
    return out


def build_pair_dataset(cfg: TrackConfig, datasets: list[tuple[TrackingDataset, float]]) -> TrackingPairDataset:
    """The training-pair dataset with the config's sizes, crop factors and augmentation."""
    return TrackingPairDataset(
        datasets,
        samples_per_epoch=cfg.samples_per_epoch,
        seed=cfg.seed,
        max_gap=cfg.max_gap,
        template_size=cfg.template_size,
        search_size=cfg.search_size,
        template_factor=cfg.template_factor,
        search_factor=cfg.search_factor,
        template_center_jitter=cfg.template_center_jitter,
        template_scale_jitter=cfg.template_scale_jitter,
        search_center_jitter=cfg.search_center_jitter,
        search_scale_jitter=cfg.search_scale_jitter,
        gray_prob=cfg.gray_prob,
        brightness_jitter=cfg.brightness_jitter,
        flip_prob=cfg.flip_prob,
    )


def build_model(cfg: TrackConfig, load_backbone: bool = True) -> OneStreamTracker:
    """The tracker network; with ``load_backbone`` and a ``backbone_checkpoint``, the backbone (and the template
    / search position embeddings) start from that ImageNet checkpoint."""
    model = OneStreamTracker(
        cfg.backbone,
        template_size=cfg.template_size,
        search_size=cfg.search_size,
        head_channels=cfg.head_channels,
        token_type_embed=cfg.token_type_embed,
        drop_path_rate=cfg.drop_path,
        **cfg.backbone_kwargs,
    )
    if load_backbone and cfg.backbone_checkpoint:
        info = model.load_backbone_checkpoint(cfg.backbone_checkpoint)
        log.info(f"backbone initialised from {info['path']} ({info['source']} weights, {info['num_tensors']} tensors)")
    if cfg.grad_checkpointing:
        model.set_grad_checkpointing(True)
    return model


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _group_lr(optimizer: torch.optim.Optimizer, prefix: str) -> float:
    for g in optimizer.param_groups:
        if str(g.get("name", "")).startswith(prefix):
            return float(g["lr"])
    return float(optimizer.param_groups[0]["lr"])


def _write_summary(path: Path, metrics: dict[str, Any], fresh: bool) -> None:
    new = fresh or not path.exists()
    with open(path, "w" if new else "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(metrics))
        if new:
            w.writeheader()
        w.writerow(metrics)


# ------------------------------------------------------------------ main entry
def train_tracker(cfg: TrackConfig, resume: str | None = None) -> dict[str, Any]:
    """Trains the tracker as configured (see the module docstring); returns the last epoch's metrics plus
    ``output_dir``. Works under torchrun (one process per GPU) and as a single process (CPU or one GPU)."""
    rank, world, local, device = setup_distributed()
    is_main = rank == 0
    logging.basicConfig(level=logging.INFO if is_main else logging.WARNING, format="%(message)s")
    datasets = build_training_datasets(cfg)  # configuration errors before anything heavy
    _seed_all(cfg.seed)  # every rank builds the same initial model
    model = build_model(cfg, load_backbone=resume is None).to(device)
    _seed_all(cfg.seed + rank)  # per-rank streams (drop path) from here on
    use_amp = cfg.amp and device.type == "cuda"
    amp_dtype = getattr(torch, cfg.amp_dtype)
    amp_ctx = (lambda: torch.autocast("cuda", dtype=amp_dtype)) if use_amp else nullcontext

    pairs = build_pair_dataset(cfg, datasets)
    sampler = RankSampler(cfg.samples_per_epoch, rank, world)
    steps_per_epoch = len(sampler) // cfg.batch_size
    if cfg.max_steps_per_epoch is not None:
        steps_per_epoch = min(steps_per_epoch, cfg.max_steps_per_epoch)
    if steps_per_epoch <= 0:
        raise ValueError(
            f"samples_per_epoch {cfg.samples_per_epoch} gives no full batch of {cfg.batch_size} on each of "
            f"{world} process(es); raise samples_per_epoch or lower batch_size"
        )
    loader = DataLoader(
        pairs,
        batch_size=cfg.batch_size,
        sampler=sampler,
        num_workers=cfg.workers,
        pin_memory=cfg.pin_mem and device.type == "cuda",
        drop_last=True,
        persistent_workers=False,  # workers must see set_epoch: they copy the dataset per epoch
    )

    groups = param_groups(model, cfg.lr, cfg.backbone_lr_scale, cfg.weight_decay)
    opt_args: dict[str, Any] = dict(lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.opt.lower() in ("adamw", "adam", "lamb", "nadamw"):
        opt_args.update(eps=cfg.opt_eps, betas=tuple(cfg.opt_betas))
    optimizer = create_optimizer_v2(groups, cfg.opt, **opt_args)
    scheduler, num_epochs = create_scheduler_v2(
        optimizer,
        sched=cfg.sched,
        num_epochs=cfg.epochs,
        decay_epochs=cfg.resolved_lr_drop_epoch,
        decay_milestones=[cfg.resolved_lr_drop_epoch],
        decay_rate=cfg.lr_drop_rate,
        min_lr=cfg.min_lr,
        warmup_lr=cfg.warmup_lr,
        warmup_epochs=cfg.warmup_epochs,
        step_on_epochs=True,
    )
    criterion = TrackingLoss(cfg.focal_weight, cfg.giou_weight, cfg.l1_weight, gt_format="xywh")
    scaler = torch.amp.GradScaler("cuda") if use_amp and amp_dtype == torch.float16 else None

    out_dir = Path(cfg.output) / cfg.experiment_name
    start_epoch, step = 0, 0
    if resume:
        ck = load_checkpoint(resume)
        if not isinstance(ck.get("model"), dict) or "optimizer" not in ck:
            raise ValueError(f"{resume} is not a tools/train_tracker.py checkpoint (last.pth)")
        model.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        scheduler.load_state_dict(ck["scheduler"])
        if scaler is not None and ck.get("scaler") is not None:
            scaler.load_state_dict(ck["scaler"])
        start_epoch, step = ck["epoch"] + 1, ck["step"]
        rngs = ck["rng"]
        set_rng_state(rngs[rank] if isinstance(rngs, list) and rank < len(rngs) else rngs[0])
        if is_main:
            log.info(f"resumed from {resume} at epoch {start_epoch + 1}, step {step}")

    train_model: nn.Module = model
    if world > 1:
        train_model = nn.parallel.DistributedDataParallel(model, device_ids=[local] if device.type == "cuda" else None)

    writer = None
    if is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.yaml").write_text(track_config_to_yaml(cfg))
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out_dir / "tb"))
        n_params = sum(p.numel() for p in model.parameters()) / 1e6
        names = ", ".join(f"{type(d).__name__}({len(d)} seq) x{r:g}" for d, r in datasets)
        log.info(
            f"{cfg.backbone} tracker ({cfg.template_size}/{cfg.search_size}): {n_params:.2f}M parameters, "
            f"{world} process(es), global batch {cfg.batch_size * world}, {steps_per_epoch} steps/epoch, "
            f"lr {cfg.lr:g} (backbone x{cfg.backbone_lr_scale:g}), data: {names}, output {out_dir}"
        )

    from tqdm import tqdm

    run_start = time.time()
    end_epoch = num_epochs if cfg.stop_after_epochs is None else min(num_epochs, start_epoch + cfg.stop_after_epochs)
    metrics: dict[str, Any] = {}
    for epoch in range(start_epoch, end_epoch):
        pairs.set_epoch(epoch)
        train_model.train()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        lr_head, lr_backbone = _group_lr(optimizer, "head"), _group_lr(optimizer, "backbone")
        sums = torch.zeros(len(LOSS_PARTS), dtype=torch.float64, device=device)
        t0, seen, n_steps = time.time(), 0, 0
        bar = tqdm(
            total=steps_per_epoch,
            desc=f"epoch {epoch + 1}/{num_epochs}",
            disable=not is_main,
            dynamic_ncols=True,
            leave=False,
        )
        for i, batch in enumerate(loader):
            if i >= steps_per_epoch:
                break
            template = batch["template"].to(device, non_blocking=True)
            search = batch["search"].to(device, non_blocking=True)
            gt = batch["search_box"].to(device, non_blocking=True)
            with amp_ctx():
                out = train_model(template, search)
            loss, parts = criterion(out, gt)  # float32: the head's outputs are float32 under autocast
            bad = torch.tensor(float(not torch.isfinite(loss.detach())), device=device)
            if _all_reduce(bad, dist.ReduceOp.MAX if world > 1 else None).item() > 0:
                raise NonFiniteLossError(
                    f"non-finite loss ({loss.item()}) at epoch {epoch + 1}, step {i}: stopping before the optimizer "
                    f"step; the last good checkpoint in {out_dir} is intact. Lower the learning rate or the "
                    f"gradient clip (clip_grad)."
                )
            (scaler.scale(loss) if scaler is not None else loss).backward()
            grad_norm = clip_and_step(model, optimizer, scaler, cfg.clip_grad,
                                      f"epoch {epoch + 1}, step {i} (checkpoints in {out_dir})")
            step += 1
            n_steps += 1
            sums += torch.stack([parts[k].double() for k in LOSS_PARTS])
            seen += template.shape[0] * world
            if is_main:
                pps = seen / max(time.time() - t0, 1e-9)
                bar.set_postfix(
                    loss=f"{parts['total'].item():.3f}", iou=f"{parts['iou'].item():.2f}", pairs_s=f"{pps:.0f}"
                )
                bar.update(1)
                if step % cfg.log_interval == 0:
                    for k in LOSS_PARTS:
                        writer.add_scalar(f"train/{'loss' if k == 'total' else k}", parts[k].item(), step)
                    writer.add_scalar("train/lr", lr_head, step)
                    writer.add_scalar("train/lr_backbone", lr_backbone, step)
                    writer.add_scalar("train/grad_norm", float(grad_norm), step)
                    writer.add_scalar("train/pairs_per_s", pps, step)
        bar.close()
        epoch_time = time.time() - t0
        means = (_all_reduce(sums) / max(n_steps * world, 1)).tolist()
        scheduler.step(epoch + 1)
        metrics = dict(epoch=epoch + 1, step=step)
        metrics.update({("loss" if k == "total" else k): v for k, v in zip(LOSS_PARTS, means)})
        metrics.update(lr=lr_head, lr_backbone=lr_backbone, pairs_per_s=seen / epoch_time, epoch_time_s=epoch_time)
        if device.type == "cuda":
            metrics["peak_mem_gb"] = torch.cuda.max_memory_allocated(device) / 2**30
        if world > 1:
            # BatchNorm running statistics (the head's) are updated per rank; DDP broadcasts rank 0's buffers at
            # every forward, so the others' never matter: make them equal for the checkpoint and the digest
            for buf in model.buffers():
                dist.broadcast(buf, 0)
        rngs = [rng_state()]
        if world > 1:
            gathered: list[Any] = [None] * world
            dist.all_gather_object(gathered, rngs[0])
            rngs = gathered
        if is_main:
            for k in ("loss", "focal", "giou", "l1", "iou", "pairs_per_s"):
                writer.add_scalar(f"epoch/{k}", metrics[k], epoch + 1)
            writer.flush()
            _write_summary(out_dir / "summary.csv", metrics, fresh=epoch == 0)
            ck = dict(
                model=model.state_dict(),
                optimizer=optimizer.state_dict(),
                scheduler=scheduler.state_dict(),
                scaler=scaler.state_dict() if scaler is not None else None,
                epoch=epoch,
                step=step,
                rng=rngs,
                config=dataclasses.asdict(cfg),
                metrics=metrics,
                kind="comba_tracker",
            )
            atomic_save(ck, out_dir / "last.pth")
            elapsed = time.time() - run_start
            eta = elapsed / (epoch + 1 - start_epoch) * (num_epochs - epoch - 1)
            log.info(
                f"epoch {epoch + 1}/{num_epochs}: loss {metrics['loss']:.4f} (focal {metrics['focal']:.4f}, "
                f"giou {metrics['giou']:.4f}, l1 {metrics['l1']:.4f}), IoU {metrics['iou']:.3f}, "
                f"{metrics['pairs_per_s']:.1f} pairs/s, lr {lr_head:.3g}, ETA {eta / 60:.1f} min"
            )
    check_ranks_agree(model, world, is_main)
    if writer is not None:
        writer.close()
    return dict(metrics, output_dir=str(out_dir))
