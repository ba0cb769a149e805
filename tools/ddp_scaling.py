#!/usr/bin/env python3
"""Multi-GPU scaling check: the same short training with torchrun on N processes and on 1, same global batch.

    python tools/ddp_scaling.py --data-dir DIGITS_IMAGEFOLDER --gpus 2 --epochs 20 --out scaling/

Runs ``tools/train_imagenet.py`` (``configs/comba_tiny_in1k.yaml`` by default; repeated augmentation off in
both runs so that they sample alike) under ``torchrun --standalone --nproc_per_node N`` and then
``--nproc_per_node 1`` with the per-process batch scaled so that the global batch is the same, logging the
loss every step. Then reads both runs' TensorBoard logs and reports: images/s of each run (median over
epochs after the first) and their ratio, whether all ranks ended with identical weights (the trainer checks
this and logs it), and how far apart the two loss curves are (mean absolute difference of 20-step moving
averages, relative to the single-process curve's mean). Writes ``scaling.json`` in --out. NVLink multicast
(NVLS) is left off (``NCCL_NVLS_ENABLE=0``). Extra arguments go to the training script.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def scalars(log_dir: Path, tag: str) -> list[tuple[int, float]]:
    """(step, value) pairs of a TensorBoard scalar under log_dir (every event file, sorted by step)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    out = {}
    for f in sorted(log_dir.rglob("events.out.tfevents.*")):
        acc = EventAccumulator(str(f), size_guidance={"scalars": 0})
        acc.Reload()
        if tag in acc.Tags().get("scalars", []):
            out.update({e.step: e.value for e in acc.Scalars(tag)})
    return sorted(out.items())


def moving_average(values: list[float], n: int) -> list[float]:
    n = max(1, min(n, len(values)))
    return [sum(values[i - n + 1:i + 1]) / n for i in range(n - 1, len(values))]


def curve_gap(a: list[tuple[int, float]], b: list[tuple[int, float]], window: int = 20) -> float:
    """Mean |a - b| of the moving averages over the steps both curves have, relative to mean |b|."""
    da, db = dict(a), dict(b)
    steps = sorted(set(da) & set(db))
    if not steps:
        raise ValueError("the two loss curves share no step")
    ma, mb = moving_average([da[s] for s in steps], window), moving_average([db[s] for s in steps], window)
    return statistics.fmean(abs(x - y) for x, y in zip(ma, mb)) / statistics.fmean(abs(y) for y in mb)


def epoch_rate(summary_csv: Path) -> float:
    """Median images/s over the epochs after the first (the first pays for compilation and start-up)."""
    import csv
    with open(summary_csv) as f:
        rates = [float(r["images_per_s"]) for r in csv.DictReader(f)]
    return statistics.median(rates[1:] if len(rates) > 1 else rates)


def run(nproc: int, args, extra: list[str]) -> dict:
    name = f"{args.experiment}_{nproc}p"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           str(ROOT / "tools" / "train_imagenet.py"), "--config", args.config, "--data-dir", args.data_dir,
           "--batch-size", str(args.global_batch // nproc), "--epochs", str(args.epochs), "--aug-repeats", "0",
           "--log-interval", "1", "--output", str(args.out), "--experiment", name, "--workers", str(args.workers),
           *extra]
    env = dict(os.environ, NCCL_NVLS_ENABLE="0", OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    print("$ " + " ".join(cmd), flush=True)
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    log = res.stdout + res.stderr
    (Path(args.out) / f"{name}.log").write_text(log)
    if res.returncode != 0:
        raise SystemExit(f"{name} failed (exit {res.returncode}); last lines:\n" + "\n".join(log.splitlines()[-15:]))
    run_dir = Path(args.out) / name
    return dict(nproc=nproc, images_per_s=epoch_rate(run_dir / "summary.csv"),
                identical_weights=nproc == 1 or f"weights identical across {nproc} ranks" in log,
                loss=scalars(run_dir, "train/loss"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", required=True, help="ImageFolder tree (train/, val/)")
    ap.add_argument("--config", default=str(ROOT / "configs" / "comba_tiny_in1k.yaml"))
    ap.add_argument("--gpus", type=int, default=2)
    ap.add_argument("--global-batch", type=int, default=256)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--experiment", default="scaling")
    ap.add_argument("--out", default="scaling")
    args, extra = ap.parse_known_args(argv)
    if args.global_batch % args.gpus:
        ap.error(f"--global-batch {args.global_batch} is not divisible by --gpus {args.gpus}")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    multi, single = run(args.gpus, args, extra), run(1, args, extra)
    report = dict(
        gpus=args.gpus, global_batch=args.global_batch, epochs=args.epochs,
        images_per_s={str(r["nproc"]): r["images_per_s"] for r in (multi, single)},
        speedup=multi["images_per_s"] / single["images_per_s"],
        identical_weights=multi["identical_weights"],
        loss_curve_gap=curve_gap(multi["loss"], single["loss"]),
        steps=len(multi["loss"]),
    )
    (Path(args.out) / "scaling.json").write_text(json.dumps(dict(report, loss_multi=multi["loss"],
                                                                  loss_single=single["loss"]), indent=1))
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
