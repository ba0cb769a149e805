#!/usr/bin/env python3
"""Multi-GPU scaling check: the same short training with torchrun on N processes and on 1, same global batch.

    python tools/ddp_scaling.py --data-dir DIGITS_IMAGEFOLDER --gpus 2 --epochs 20 --out scaling/
    python tools/ddp_scaling.py --make-digits /tmp/digits224 --digits-copies 10 --gpus 2 --epochs 4 \\
        --global-batch 256 --workers 15 --out scaling/
    python tools/ddp_scaling.py --task tracker --data-dir /data/got10k --gpus 2 --epochs 5 --out trk_scaling/
    python tools/ddp_scaling.py --task tracker --make-synthetic-got10k /tmp/got --gpus 2 --epochs 5 \\
        --samples-per-epoch 3200 --global-batch 64 --out trk_scaling/

``--task imagenet`` (the default) runs ``tools/train_imagenet.py`` (``configs/comba_tiny_in1k.yaml`` by default;
repeated augmentation off in both runs so that they sample alike) on the ImageFolder ``--data-dir``;
``--make-digits DIR`` first writes scikit-learn's digits there as one (``--digits-size`` px, 224 by default;
kept if already complete; ``--digits-copies K`` links each training image K times for longer epochs) and uses
it. ``--task tracker`` runs ``tools/train_tracker.py`` (``configs/tracking/got10k_comba_tiny.yaml`` by default)
with ``--data-dir`` as the GOT-10k root (``--data-root-got10k``) and ``--samples-per-epoch`` pairs an epoch
(3200 by default; the tracker's ``RankSampler`` gives the N-process run the same pairs in the same global
batches as the 1-process run); ``--make-synthetic-got10k DIR`` first writes a small synthetic GOT-10k train
split there (24 sequences of 60 frames, 320x240, a textured object moving and changing scale over scikit-image
photographs; kept if ``DIR/train/list.txt`` exists). The package has no such generator, so it comes from the
test helpers: ``tests.tracking.layouts.make_got10k_layout`` (importable because this script puts the repository
root on ``sys.path``).

Each task runs under ``torchrun --standalone --nproc_per_node N`` and then ``--nproc_per_node 1`` with the
per-process batch scaled so that the global batch is the same, logging the loss every step. Then reads both
runs' TensorBoard logs and reports: images/s (tracker: pairs/s) of each run (median over epochs after the first,
from ``summary.csv``) and their ratio, whether all ranks ended with identical weights (both trainers check this
with ``check_ranks_agree`` and log it), the steady-state rate of each run (median over consecutive steps after
the first epoch of global batch / step time, from the TensorBoard wall times: it leaves out the per-epoch
evaluation and data-loader start-up, large on a small data set) and its ratio, and how far apart the two loss
curves (``train/loss``) are (mean absolute difference of 20-step moving averages, relative to the single-process
curve's mean). Writes ``scaling.json`` in --out. NVLink multicast is left off (``NCCL_NVLS_ENABLE=0``,
``TORCH_SYMM_MEM_DISABLE_MULTICAST=1``, ``NVSHMEM_DISABLE_NVLS=1``).
Extra arguments go to the training script (config overrides such as ``--backbone comba_micro``)."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # comba_vision and the test helpers (--make-*) without an install

TASKS = {
    "imagenet": dict(script="train_imagenet.py", config=ROOT / "configs" / "comba_tiny_in1k.yaml",
                     global_batch=256, epochs=20, rate="images_per_s"),
    "tracker": dict(script="train_tracker.py", config=ROOT / "configs" / "tracking" / "got10k_comba_tiny.yaml",
                    global_batch=64, epochs=5, rate="pairs_per_s"),
}


def scalar_events(log_dir: Path, tag: str) -> list[tuple[int, float, float]]:
    """(step, value, wall time) of a TensorBoard scalar under log_dir (every event file, sorted by step)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    out = {}
    for f in sorted(log_dir.rglob("events.out.tfevents.*")):
        acc = EventAccumulator(str(f), size_guidance={"scalars": 0})
        acc.Reload()
        if tag in acc.Tags().get("scalars", []):
            out.update({e.step: (e.value, e.wall_time) for e in acc.Scalars(tag)})
    return [(s, v, t) for s, (v, t) in sorted(out.items())]


def step_rate(events: list[tuple[int, float, float]], global_batch: int, skip_steps: int = 0) -> float:
    """Steady-state samples/s: the median over consecutive logged steps (s, s+1) of global_batch / their wall-time
    gap, after the first skip_steps steps. Both trainers synchronise every step (the non-finite loss check), so a
    step's log time is when it ended. The median leaves out the few gaps that span an epoch boundary (evaluation,
    data-loader start-up): on a small data set those fixed per-epoch costs weigh more than they would on ImageNet,
    and they do not scale with the number of GPUs."""
    rates = [global_batch / (t1 - t0) for (s0, _, t0), (s1, _, t1) in zip(events, events[1:])
             if s1 == s0 + 1 and s0 >= skip_steps and t1 > t0]
    if not rates:
        raise ValueError("no two consecutive logged steps after the skipped ones: log every step (--log-interval 1)")
    return statistics.median(rates)


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


def epoch_rate(summary_csv: Path, column: str = "images_per_s") -> float:
    """Median of a per-epoch rate (images/s, pairs/s) over the epochs after the first (the first pays for
    compilation and start-up)."""
    import csv
    with open(summary_csv) as f:
        rates = [float(r[column]) for r in csv.DictReader(f)]
    return statistics.median(rates[1:] if len(rates) > 1 else rates)


def make_synthetic_got10k(root: str | Path, n_seqs: int = 24, n_frames: int = 60,
                          size: tuple[int, int] = (320, 240)) -> Path:
    """A synthetic GOT-10k train split in ``root/train`` (kept if ``train/list.txt`` is there already), written
    by the test helper ``tests.tracking.layouts.make_got10k_layout`` (the package has no generator of its own)."""
    root = Path(root)
    if (root / "train" / "list.txt").is_file():
        print(f"synthetic GOT-10k: keeping {root / 'train'}", flush=True)
        return root
    if (root / "train").exists():
        raise SystemExit(f"{root / 'train'} exists without list.txt: not a GOT-10k split; remove it or pick "
                         "another --make-synthetic-got10k directory")
    from tests.tracking.layouts import make_got10k_layout
    partial = root / ".synthetic.partial"  # written aside and moved into place: an interrupted run leaves no train/
    shutil.rmtree(partial, ignore_errors=True)
    make_got10k_layout(partial, n_seqs=n_seqs, n_frames=n_frames, split="train", size=size, seed=0)
    os.replace(partial / "train", root / "train")
    partial.rmdir()
    print(f"synthetic GOT-10k: {n_seqs} sequences of {n_frames} frames ({size[0]}x{size[1]}) in {root / 'train'}",
          flush=True)
    return root


def make_digits(root: str | Path, size: int, copies: int = 1) -> Path:
    """scikit-learn's digits as an ImageFolder of size x size PNGs (``write_digits_imagefolder``), each training
    image ``copies`` times (hard links ``NAME_copyK.png``): 1437 training images make an epoch of a handful of
    steps at a global batch of 256, too few for the data loaders to reach a steady state."""
    from comba_vision.train.data import write_digits_imagefolder
    if copies < 1:
        raise ValueError(f"copies must be >= 1, got {copies}")
    out = write_digits_imagefolder(Path(root), size=size)
    originals = [f for f in sorted((out / "train").glob("*/*.png")) if "_copy" not in f.stem]
    for f in originals:
        for c in range(1, copies):
            dst = f.with_name(f"{f.stem}_copy{c}.png")
            if not dst.exists():
                os.link(f, dst)
    n_train = sum(1 for _ in (out / "train").glob("*/*.png"))
    print(f"digits ImageFolder ({size}px, {n_train} training images) in {out}", flush=True)
    return out


def run(nproc: int, args, extra: list[str]) -> dict:
    task = TASKS[args.task]
    name = f"{args.experiment}_{nproc}p"
    if args.task == "imagenet":
        data = ["--data-dir", args.data_dir, "--aug-repeats", "0"]
    else:
        data = ["--data-root-got10k", args.data_dir, "--samples-per-epoch", str(args.samples_per_epoch)]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           str(ROOT / "tools" / task["script"]), "--config", args.config, *data,
           "--batch-size", str(args.global_batch // nproc), "--epochs", str(args.epochs),
           "--log-interval", "1", "--output", str(args.out), "--experiment", name, "--workers", str(args.workers),
           *extra]
    env = dict(os.environ, NCCL_NVLS_ENABLE="0", TORCH_SYMM_MEM_DISABLE_MULTICAST="1", NVSHMEM_DISABLE_NVLS="1",
               OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    print("$ " + " ".join(cmd), flush=True)
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    log = res.stdout + res.stderr
    (Path(args.out) / f"{name}.log").write_text(log)
    if res.returncode != 0:
        raise SystemExit(f"{name} failed (exit {res.returncode}); last lines:\n" + "\n".join(log.splitlines()[-15:]))
    run_dir = Path(args.out) / name
    events = scalar_events(run_dir, "train/loss")
    steps_per_epoch = len(events) // args.epochs
    return dict(nproc=nproc, rate=epoch_rate(run_dir / "summary.csv", task["rate"]),
                step_rate=step_rate(events, args.global_batch, skip_steps=steps_per_epoch),
                identical_weights=nproc == 1 or f"weights identical across {nproc} ranks" in log,
                loss=[(s, v) for s, v, _ in events])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", choices=sorted(TASKS), default="imagenet",
                    help="imagenet: tools/train_imagenet.py; tracker: tools/train_tracker.py")
    ap.add_argument("--data-dir", help="ImageFolder tree (train/, val/); tracker: the GOT-10k root (train/)")
    ap.add_argument("--make-digits", metavar="DIR",
                    help="imagenet: write scikit-learn's digits as an ImageFolder in DIR and train on it")
    ap.add_argument("--digits-size", type=int, default=224, help="--make-digits image size (px)")
    ap.add_argument("--digits-copies", type=int, default=1,
                    help="--make-digits: each training image this many times (longer epochs)")
    ap.add_argument("--make-synthetic-got10k", metavar="DIR",
                    help="tracker: write a small synthetic GOT-10k train split in DIR and train on it")
    ap.add_argument("--config", default=None, help="default: configs/comba_tiny_in1k.yaml (imagenet), "
                    "configs/tracking/got10k_comba_tiny.yaml (tracker)")
    ap.add_argument("--gpus", type=int, default=2)
    ap.add_argument("--global-batch", type=int, default=None, help="default: 256 (imagenet), 64 (tracker)")
    ap.add_argument("--epochs", type=int, default=None, help="default: 20 (imagenet), 5 (tracker)")
    ap.add_argument("--samples-per-epoch", type=int, default=None, help="tracker: pairs an epoch (default 3200)")
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--experiment", default="scaling")
    ap.add_argument("--out", default="scaling")
    args, extra = ap.parse_known_args(argv)
    task = TASKS[args.task]
    args.config = args.config or str(task["config"])
    args.global_batch = args.global_batch or task["global_batch"]
    args.epochs = args.epochs or task["epochs"]
    make = args.make_digits if args.task == "imagenet" else args.make_synthetic_got10k
    wrong = args.make_synthetic_got10k if args.task == "imagenet" else args.make_digits
    if wrong:
        ap.error(f"--make-{'synthetic-got10k' if args.task == 'imagenet' else 'digits'} does not go with "
                 f"--task {args.task}")
    if args.task == "imagenet" and args.samples_per_epoch is not None:
        ap.error("--samples-per-epoch is for --task tracker (an ImageNet epoch is the whole train split)")
    args.samples_per_epoch = args.samples_per_epoch or 3200
    if bool(make) == bool(args.data_dir):
        flag = "--make-digits" if args.task == "imagenet" else "--make-synthetic-got10k"
        ap.error(f"give one of --data-dir and {flag}")
    if args.global_batch % args.gpus:
        ap.error(f"--global-batch {args.global_batch} is not divisible by --gpus {args.gpus}")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    if make:
        if args.task == "imagenet":
            made = make_digits(make, args.digits_size, args.digits_copies)
        else:
            made = make_synthetic_got10k(make)
        args.data_dir = str(made)
    multi, single = run(args.gpus, args, extra), run(1, args, extra)
    rate = task["rate"]
    report = dict(
        task=args.task, gpus=args.gpus, global_batch=args.global_batch, epochs=args.epochs,
        **({"samples_per_epoch": args.samples_per_epoch} if args.task == "tracker" else {}),
        **{rate: {str(r["nproc"]): r["rate"] for r in (multi, single)}},
        speedup=multi["rate"] / single["rate"],
        **{f"steady_{rate}": {str(r["nproc"]): r["step_rate"] for r in (multi, single)}},
        steady_speedup=multi["step_rate"] / single["step_rate"],
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
