"""ImageNet-style training loop on timm's pieces: data, augmentation, optimizer, scheduler, EMA.

What is ours: the loop, the logging (tqdm, TensorBoard, summary.csv) and the checkpointing (atomic
writes, exact resume including RNG state, last/best).
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import logging
import math
import os
import random
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
from timm.data import Mixup, create_dataset, create_loader, resolve_data_config
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from timm.models import create_model
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2
from timm.utils import ModelEmaV3, accuracy

import comba_vision  # noqa: F401  (registers the models)

from .config import TrainConfig, to_yaml
from .data import SkipCounter, _classes, check_layout, decoding_dataset, write_digits_imagefolder
from .step import (
    CAPTURABLE_OPTIMIZERS,
    GraphedTrainStep,
    NonFiniteLossError,
    check_finite_count,
    fused_optimizer_kwargs,
    guarded_update,
    guards_on_device,
    nonfinite_loss,
)

log = logging.getLogger("comba_vision.train")


def clip_and_step(model: nn.Module, optimizer, scaler, clip_grad: float | None, where: str) -> torch.Tensor:
    """Unscales (fp16), clips the gradient norm, steps the optimizer (through the scaler) and zeroes the
    gradients; returns the norm. Without a scaler a non-finite norm stops the run before the step, so the
    weights are never corrupted (with one, the scaler skips that step itself)."""
    if scaler is not None:
        scaler.unscale_(optimizer)
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad or math.inf)
    if scaler is None and not torch.isfinite(grad_norm):
        raise NonFiniteLossError(f"non-finite gradient norm at {where}: stopping before the optimizer step; "
                                 f"the last good checkpoint is intact.")
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return grad_norm


def check_loss_on_host(loss: torch.Tensor, world: int, where: str, out_dir) -> None:
    """The host-side NaN guard (one synchronisation a micro-batch): raises NonFiniteLossError before the
    backward if the loss is not finite on any rank."""
    bad = torch.tensor(float(not torch.isfinite(loss.detach())), device=loss.device)
    if _all_reduce(bad, dist.ReduceOp.MAX if world > 1 else None).item() > 0:
        raise NonFiniteLossError(
            f"non-finite loss ({loss.item()}) at {where}: stopping before the optimizer step; the last good "
            f"checkpoint in {out_dir} is intact. Lower the learning rate or enable clip_grad.")


def check_cuda_graph(cfg: TrainConfig, device: torch.device, world: int, use_amp: bool) -> None:
    """ValueError naming what a CUDA-graph training step (config key cuda_graph) cannot run with."""
    problems = []
    if device.type != "cuda":
        problems.append(f"a CUDA device (this process has {device})")
    if world > 1:
        problems.append(f"a single process (this run has {world}; the eager step of a torchrun run keeps its NaN "
                        f"guard on the device too)")
    if cfg.accum_steps != 1:
        problems.append(f"accum_steps 1 (got {cfg.accum_steps})")
    if cfg.opt.lower() not in CAPTURABLE_OPTIMIZERS:
        problems.append(f"opt one of {list(CAPTURABLE_OPTIMIZERS)} (got {cfg.opt!r})")
    if use_amp and cfg.amp_dtype == "float16":
        problems.append("amp_dtype bfloat16 or amp off (fp16 loss scaling synchronises every step)")
    if cfg.compile:
        problems.append("compile off")
    if cfg.grad_checkpointing or cfg.model_kwargs.get("mixer_recompute"):
        problems.append("grad_checkpointing and mixer_recompute off (torch.utils.checkpoint reads the CUDA RNG state, "
                        "which a capture does not allow)")
    if problems:
        raise ValueError("cuda_graph needs " + "; ".join(problems))


# ------------------------------------------------------------------ distributed helpers
def setup_distributed() -> tuple[int, int, int, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        if local >= torch.cuda.device_count():
            raise RuntimeError(f"LOCAL_RANK {local} but only {torch.cuda.device_count()} CUDA device(s) are visible: "
                               "start at most that many processes per node (torchrun --nproc_per_node), or hide the "
                               "GPUs (CUDA_VISIBLE_DEVICES=) to run every rank on the CPU")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank, world, local, device


def teardown_distributed() -> None:
    """Destroys the process group setup_distributed made, if any. Called at the end of the command-line
    entry points: a gloo group left to the interpreter's exit can abort a rank after the run has finished
    (seen once: "terminate called without an active exception", and torchrun reports the run failed)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _all_reduce(t: torch.Tensor, op=None) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(t, op=op or dist.ReduceOp.SUM)
    return t


def check_ranks_agree(model: nn.Module, world: int, is_main: bool) -> None:
    """After a distributed run: every rank must hold the same weights (raises with the digests if not)."""
    if world <= 1:
        return
    digest = weights_digest(model)
    digests: list = [None] * world
    dist.all_gather_object(digests, digest)
    if len(set(digests)) != 1:
        raise RuntimeError(f"ranks hold different weights at the end: {digests}")
    if is_main:
        log.info(f"weights identical across {world} ranks: {digest}")


def weights_digest(model: nn.Module) -> str:
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


# ------------------------------------------------------------------ checkpoints
def atomic_save(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def checkpoint_dict(model_sd: dict, *, num_classes: int, best_source: str = "model", ema_sd: dict | None = None,
                    optimizer_sd: dict | None = None, scheduler_sd: dict | None = None, scaler_sd: dict | None = None,
                    epoch: int = 0, step: int = 0, best: dict | None = None, rng: list | None = None,
                    config: dict | None = None, metrics: dict | None = None) -> dict:
    """The checkpoint tools/train_imagenet.py writes as last.pth / best.pth (read back by --resume, by
    --eval-only and by the tracker's backbone loader). ``best_source`` says whether the best top-1 came from
    the model or its EMA copy."""
    return dict(model=model_sd, optimizer=optimizer_sd or {}, scheduler=scheduler_sd or {}, model_ema=ema_sd,
                scaler=scaler_sd, epoch=epoch, step=step, best=best or {}, rng=rng or [], config=config or {},
                metrics=metrics or {}, best_source=best_source, num_classes=num_classes)


def rng_state() -> dict:
    st = dict(python=random.getstate(), numpy=np.random.get_state(), torch=torch.get_rng_state())
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(st: dict) -> None:
    random.setstate(st["python"])
    np.random.set_state(st["numpy"])
    torch.set_rng_state(st["torch"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def load_checkpoint(path: str) -> dict:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    return torch.load(path, map_location="cpu", weights_only=False)


# ------------------------------------------------------------------ building blocks
def resolve_data_dir(cfg: TrainConfig) -> str:
    if cfg.dataset == "sklearn-digits":
        size = cfg.img_size or cfg.model_kwargs.get("img_size") or 32  # upscaled to the model's input size
        return str(write_digits_imagefolder(cfg.data_dir and Path(cfg.data_dir), size=int(size)))
    if cfg.dataset:
        raise ValueError(f"unknown dataset {cfg.dataset!r}: use '' (an ImageFolder / tar tree) or 'sklearn-digits'")
    return cfg.data_dir


def _split_root(data_dir: str, split: str) -> str:
    """DATA/split (an ImageFolder tree) or DATA/split.tar (timm reads tar shards of class folders)."""
    folder = Path(data_dir) / split
    tar = Path(data_dir) / f"{split}.tar"
    return str(tar if tar.is_file() and not folder.is_dir() else folder)


def build_loaders(cfg, model, data_dir, world, device, train=True):
    args = dict(interpolation=cfg.interpolation, crop_pct=cfg.crop_pct)
    if cfg.img_size is not None:
        args["img_size"] = int(cfg.img_size)
    elif hasattr(model, "patch_embed") and getattr(model.patch_embed, "img_size", None):
        in_chans = model.patch_embed.proj.in_channels
        args["input_size"] = (in_chans, *model.patch_embed.img_size)  # the size the model was built for
    data_cfg = resolve_data_config(args, model=model)
    common = dict(input_size=data_cfg["input_size"], mean=data_cfg["mean"], std=data_cfg["std"],
                  num_workers=cfg.workers, distributed=world > 1, pin_memory=cfg.pin_mem and device.type == "cuda",
                  use_prefetcher=False, persistent_workers=False, device=device)
    val_set = decoding_dataset(create_dataset("", root=_split_root(data_dir, cfg.val_split), search_split=False,
                                              is_training=False))
    val_loader = create_loader(val_set, batch_size=cfg.batch_size, is_training=False,
                               interpolation=data_cfg["interpolation"], crop_pct=data_cfg["crop_pct"], **common)
    if not train:
        return None, val_loader, val_set
    train_set = decoding_dataset(create_dataset("", root=_split_root(data_dir, cfg.train_split), search_split=False,
                                                is_training=True))
    repeats = cfg.aug_repeats if world > 1 else 0
    if cfg.aug_repeats and world == 1:
        log.info("repeated augmentation needs a distributed run: off for a single process")
    train_loader = create_loader(
        train_set, batch_size=cfg.batch_size, is_training=True, re_prob=cfg.reprob, re_mode=cfg.remode,
        re_count=cfg.recount, scale=tuple(cfg.scale), ratio=tuple(cfg.ratio), hflip=cfg.hflip,
        color_jitter=cfg.color_jitter, auto_augment=cfg.aa, num_aug_repeats=repeats,
        interpolation=cfg.train_interpolation, **common)
    return train_loader, val_loader, train_set


@torch.no_grad()
def evaluate(model, loader, device, amp_ctx, max_steps=None) -> dict:
    model.eval()
    stats = torch.zeros(3, dtype=torch.float64, device=device)
    for i, (x, y) in enumerate(loader):
        if max_steps is not None and i >= max_steps:
            break
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with amp_ctx():
            out = model(x)
        top1, top5 = accuracy(out.float(), y, topk=(1, min(5, out.shape[-1])))
        n = x.shape[0]  # summed on the device: no synchronisation a batch
        stats += torch.stack([top1 * n / 100, top5 * n / 100, top1.new_tensor(n)]).double()
    _all_reduce(stats)
    n = max(stats[2].item(), 1)
    return dict(top1=100 * stats[0].item() / n, top5=100 * stats[1].item() / n)


# ------------------------------------------------------------------ main entry
def train(cfg: TrainConfig, resume: str | None = None, eval_only: bool = False, checkpoint: str | None = None) -> dict:
    rank, world, local, device = setup_distributed()
    is_main = rank == 0
    logging.basicConfig(level=logging.INFO if is_main else logging.WARNING, format="%(message)s")
    # every rank builds the same initial model (and EMA) from cfg.seed; the per-rank streams for data
    # and augmentation are seeded after the model is built
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)

    if rank == 0 or not cfg.dataset:
        data_dir = resolve_data_dir(cfg)
    if world > 1 and cfg.dataset:
        dist.barrier()  # rank 0 writes the built-in data set once; the others read it afterwards
        data_dir = resolve_data_dir(cfg)
    check_layout(data_dir, (cfg.val_split,) if eval_only else (cfg.train_split, cfg.val_split))
    n_classes = cfg.num_classes
    if n_classes is None:
        split_dir = Path(data_dir) / cfg.val_split
        n_classes = len(_classes(split_dir)) if split_dir.is_dir() else 1000
    model_kwargs = dict(cfg.model_kwargs)
    if cfg.img_size is not None:
        model_kwargs.setdefault("img_size", cfg.img_size)
    model = create_model(cfg.model, num_classes=n_classes, drop_path_rate=cfg.drop_path, drop_rate=cfg.drop,
                         **model_kwargs)
    if cfg.grad_checkpointing:
        model.set_grad_checkpointing(True)
    model.to(device)
    seed = cfg.seed + rank
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    use_amp = cfg.amp and device.type == "cuda"
    amp_dtype = getattr(torch, cfg.amp_dtype)
    if cfg.cuda_graph and not eval_only:
        check_cuda_graph(cfg, device, world, use_amp)
    amp_ctx = (lambda: torch.autocast("cuda", dtype=amp_dtype)) if use_amp else nullcontext

    if eval_only:
        if checkpoint is None:
            raise ValueError("--eval-only needs --checkpoint")
        ck = load_checkpoint(checkpoint)
        model.load_state_dict(ck["model"] if "model" in ck else ck)
        _, val_loader, _ = build_loaders(cfg, model, data_dir, world, device, train=False)
        res = {"model": evaluate(model, val_loader, device, amp_ctx)}
        if "model_ema" in ck and ck["model_ema"] is not None:
            model.load_state_dict(ck["model_ema"])
            res["ema"] = evaluate(model, val_loader, device, amp_ctx)
        if is_main:
            for k, v in res.items():
                log.info(f"eval {k}: top-1 {v['top1']:.2f}%  top-5 {v['top5']:.2f}%")
        return res

    skips = SkipCounter().install()
    train_loader, val_loader, _ = build_loaders(cfg, model, data_dir, world, device)
    global_batch = cfg.batch_size * world * cfg.accum_steps
    lr = cfg.lr if cfg.lr is not None else cfg.lr_base * global_batch / cfg.lr_base_size
    # a fused torch optimizer where there is one: it skips a non-finite update on the device (train.step)
    fused = fused_optimizer_kwargs(cfg.opt, device, cfg.cuda_graph)
    if cfg.opt.lower() in ("adamw", "adam", "lamb"):
        extra = dict(eps=cfg.opt_eps, betas=tuple(cfg.opt_betas))
    else:
        extra = dict(momentum=cfg.momentum)
    optimizer = create_optimizer_v2(model, cfg.opt, lr=lr, weight_decay=cfg.weight_decay, **extra, **fused)
    steps_per_epoch = len(train_loader)
    if cfg.max_steps_per_epoch is not None:
        steps_per_epoch = min(steps_per_epoch, cfg.max_steps_per_epoch)
    if steps_per_epoch == 0:
        raise ValueError(f"the {cfg.train_split} split has fewer images than one batch of {cfg.batch_size} per "
                         f"process ({world} process(es)); lower batch_size")
    updates_per_epoch = math.ceil(steps_per_epoch / cfg.accum_steps)  # the last partial group steps too
    scheduler, num_epochs = create_scheduler_v2(
        optimizer, sched=cfg.sched, num_epochs=cfg.epochs, min_lr=cfg.min_lr, warmup_lr=cfg.warmup_lr,
        warmup_epochs=cfg.warmup_epochs, cooldown_epochs=cfg.cooldown_epochs, step_on_epochs=False,
        updates_per_epoch=updates_per_epoch)
    ema = ModelEmaV3(model, decay=cfg.model_ema_decay) if cfg.model_ema else None
    mixup_on = cfg.mixup > 0 or cfg.cutmix > 0
    mixup_fn = Mixup(mixup_alpha=cfg.mixup, cutmix_alpha=cfg.cutmix, prob=cfg.mixup_prob,
                     switch_prob=cfg.mixup_switch_prob, mode=cfg.mixup_mode, label_smoothing=cfg.smoothing,
                     num_classes=n_classes) if mixup_on else None
    criterion = SoftTargetCrossEntropy() if mixup_on else (
        LabelSmoothingCrossEntropy(cfg.smoothing) if cfg.smoothing > 0 else nn.CrossEntropyLoss())
    scaler = torch.amp.GradScaler("cuda") if use_amp and amp_dtype == torch.float16 else None

    out_dir = Path(cfg.output) / (cfg.experiment or f"{cfg.model}")
    start_epoch, step, best = 0, 0, dict(top1=-1.0, epoch=-1)
    if resume:
        ck = load_checkpoint(resume)
        model.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        scheduler.load_state_dict(ck["scheduler"])
        if ema is not None and ck.get("model_ema") is not None:
            ema.module.load_state_dict(ck["model_ema"])
        if scaler is not None and ck.get("scaler") is not None:
            scaler.load_state_dict(ck["scaler"])
        start_epoch, step, best = ck["epoch"] + 1, ck["step"], ck.get("best", best)
        rngs = ck["rng"]
        set_rng_state(rngs[rank] if isinstance(rngs, list) and rank < len(rngs) else rngs[0])
        if is_main:
            log.info(f"resumed from {resume} at epoch {start_epoch}, step {step}")

    train_model = model
    if world > 1:
        train_model = nn.parallel.DistributedDataParallel(model, device_ids=[local] if device.type == "cuda" else None)
    if cfg.compile:
        train_model = torch.compile(train_model)

    writer = None
    if is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.yaml").write_text(to_yaml(cfg))
        from torch.utils.tensorboard import SummaryWriter
        writer = SummaryWriter(str(out_dir / "tb"))
        log.info(f"{cfg.model}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters, "
                 f"{world} process(es), global batch {global_batch}, lr {lr:.3g}, output {out_dir}")

    from tqdm import tqdm
    # the NaN guard: on the device (a fused optimizer skips the update; train.step), read at the log interval,
    # or on the host before every update (other optimizers, fp16 loss scaling)
    on_device = guards_on_device(optimizer, scaler)
    graphed = None
    run_start = time.time()
    end_epoch = num_epochs if cfg.stop_after_epochs is None else min(num_epochs, start_epoch + cfg.stop_after_epochs)
    metrics = {}
    for epoch in range(start_epoch, end_epoch):
        if hasattr(train_loader.sampler, "set_epoch"):
            train_loader.sampler.set_epoch(epoch)
        train_model.train()
        # a CUDA graph's pool stays allocated: once captured, the peak is kept over the run (capture included)
        if device.type == "cuda" and graphed is None:
            torch.cuda.reset_peak_memory_stats(device)
        skips.reset()
        t0, seen = time.time(), 0
        loss_sum = torch.zeros((), device=device)
        grad_norm = torch.zeros((), device=device)
        bad = torch.zeros((), device=device)        # a micro-batch of this update had a non-finite loss
        n_skip = torch.zeros((), device=device)     # updates skipped on the device since the last check
        checked_at = step
        bar = tqdm(total=steps_per_epoch, desc=f"epoch {epoch + 1}/{num_epochs}", disable=not is_main,
                   dynamic_ncols=True, leave=False)
        for i, (x, y) in enumerate(train_loader):
            if i >= steps_per_epoch:
                break
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if mixup_fn is not None:
                x, y = mixup_fn(x, y)
            last_micro = (i + 1) % cfg.accum_steps == 0 or i + 1 == steps_per_epoch
            group = i // cfg.accum_steps
            # micro-batches in this accumulation group (the epoch's last group may be shorter)
            n_micro = min(cfg.accum_steps, steps_per_epoch - group * cfg.accum_steps)
            if cfg.cuda_graph:
                if graphed is None:  # captured on the first batch (and again after a resume, in a new process)
                    graphed = GraphedTrainStep(model, criterion, optimizer, x, y, cfg.clip_grad,
                                               amp_dtype if use_amp else None)
                loss, grad_norm, flag = graphed(x, y)
                n_skip += flag
            else:
                sync = nullcontext() if last_micro or world == 1 else train_model.no_sync()
                with sync:
                    with amp_ctx():
                        loss = criterion(train_model(x), y)
                    if on_device:
                        bad = torch.maximum(bad, nonfinite_loss(loss))
                    else:
                        check_loss_on_host(loss, world, f"epoch {epoch + 1}, step {i}", out_dir)
                    (scaler.scale(loss / n_micro) if scaler else loss / n_micro).backward()
                if last_micro and on_device:
                    grad_norm, flag = guarded_update(model, optimizer, cfg.clip_grad, bad, distributed=world > 1)
                    optimizer.zero_grad(set_to_none=True)
                    n_skip += flag
                    bad = torch.zeros((), device=device)
                elif last_micro:
                    grad_norm = clip_and_step(model, optimizer, scaler, cfg.clip_grad,
                                              f"epoch {epoch + 1}, step {i}")
            if last_micro:
                step += 1
                scheduler.step_update(num_updates=step)
                if ema is not None:
                    ema.update(model, step=step)
            loss_sum += loss.detach()
            seen += x.shape[0] * world
            logging_step = last_micro and step % cfg.log_interval == 0
            if logging_step and on_device:  # one sync a log interval (the main rank logs the loss here anyway)
                check_finite_count(n_skip, checked_at, step, f"epoch {epoch + 1}")
                checked_at = step
            if is_main:
                bar.update(1)
                if logging_step:
                    ips = seen / max(time.time() - t0, 1e-9)
                    cur_lr = optimizer.param_groups[0]["lr"]
                    loss_v = loss.item()
                    bar.set_postfix(loss=f"{loss_v:.3f}", lr=f"{cur_lr:.2e}", img_s=f"{ips:.0f}")
                    writer.add_scalar("train/loss", loss_v, step)
                    writer.add_scalar("train/lr", cur_lr, step)
                    writer.add_scalar("train/grad_norm", float(grad_norm), step)
                    writer.add_scalar("train/images_per_s", ips, step)
        bar.close()
        if on_device:  # before evaluating and writing a checkpoint
            check_finite_count(n_skip, checked_at, step, f"epoch {epoch + 1}")
        scheduler.step(epoch + 1)
        n_steps = max(1, min(steps_per_epoch, i + 1))
        train_loss = _all_reduce(loss_sum.clone()).item() / n_steps / world
        epoch_time = time.time() - t0
        val = evaluate(model, val_loader, device, amp_ctx)
        val_ema = evaluate(ema.module, val_loader, device, amp_ctx) if ema is not None else None
        skipped = int(_all_reduce(torch.tensor(float(skips.value), device=device)).item())
        metrics = dict(epoch=epoch + 1, train_loss=train_loss, lr=optimizer.param_groups[0]["lr"],
                       val_top1=val["top1"], val_top5=val["top5"], images_per_s=seen / epoch_time,
                       epoch_time_s=epoch_time, skipped_images=skipped)
        if device.type == "cuda":
            metrics["peak_mem_gb"] = torch.cuda.max_memory_allocated(device) / 2**30
        if val_ema is not None:
            metrics.update(ema_val_top1=val_ema["top1"], ema_val_top5=val_ema["top5"])
        score = max(val["top1"], val_ema["top1"] if val_ema else -1)
        source = "ema" if val_ema is not None and val_ema["top1"] > val["top1"] else "model"
        is_best = score > best["top1"]
        if is_best:
            best = dict(top1=score, epoch=epoch + 1)
        rngs = [rng_state()]
        if world > 1:
            gathered = [None] * world
            dist.all_gather_object(gathered, rngs[0])
            rngs = gathered
        if is_main:
            for k in ("train_loss", "val_top1", "val_top5", "ema_val_top1", "ema_val_top5", "images_per_s"):
                if k in metrics:
                    writer.add_scalar(("val/" if "val" in k else "train/") + k, metrics[k], epoch + 1)
            writer.flush()
            summary = out_dir / "summary.csv"
            new = not summary.exists() or epoch == 0
            with open(summary, "w" if new else "a", newline="") as f:
                w = csv.DictWriter(f, fieldnames=list(metrics))
                if new:
                    w.writeheader()
                w.writerow(metrics)
            ck = checkpoint_dict(
                model.state_dict(), num_classes=n_classes, best_source=source,
                ema_sd=ema.module.state_dict() if ema is not None else None, optimizer_sd=optimizer.state_dict(),
                scheduler_sd=scheduler.state_dict(), scaler_sd=scaler.state_dict() if scaler is not None else None,
                epoch=epoch, step=step, best=best, rng=rngs, config=dataclasses.asdict(cfg), metrics=metrics)
            atomic_save(ck, out_dir / "last.pth")
            if is_best:
                atomic_save(ck, out_dir / "best.pth")
            elapsed = time.time() - run_start
            eta = elapsed / (epoch + 1 - start_epoch) * (num_epochs - epoch - 1)
            ema_txt = f", EMA {val_ema['top1']:.2f}%" if val_ema else ""
            log.info(f"epoch {epoch + 1}/{num_epochs}: loss {train_loss:.4f}, val top-1 {val['top1']:.2f}% "
                     f"top-5 {val['top5']:.2f}%{ema_txt}, {metrics['images_per_s']:.0f} img/s, "
                     f"ETA {eta / 60:.1f} min" + (f", {skipped} unreadable images skipped" if skipped else ""))
    check_ranks_agree(model, world, is_main)
    if writer is not None:
        writer.close()
    if cfg.min_val_top1 is not None and metrics and end_epoch == num_epochs:
        final = max(metrics["val_top1"], metrics.get("ema_val_top1", -1))
        if final < cfg.min_val_top1:
            raise RuntimeError(f"final val top-1 {final:.2f}% is below the required {cfg.min_val_top1}%")
    return metrics
