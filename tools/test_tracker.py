#!/usr/bin/env python3
"""Run a trained Comba tracker over GOT-10k val / test or LaSOT test, write the result files and score them.

    python tools/test_tracker.py --checkpoint output/comba_tiny_got10k/last.pth --dataset got10k-val \\
        --data-root /data/got10k --results results/comba_tiny_got10k/val
    python tools/test_tracker.py --checkpoint output/comba_tiny_got10k/last.pth --dataset got10k-test \\
        --data-root /data/got10k --results results/comba_tiny_got10k/test --zip results/comba_tiny_got10k_test.zip
    python tools/test_tracker.py --checkpoint output/comba_tiny_lasot/last.pth --dataset lasot \\
        --data-root /data/lasot --results results/comba_tiny_lasot/lasot

Result layouts (comba_vision/tracking/evaluation.py): GOT-10k ``RESULTS/{seq}/{seq}_001.txt`` and
``{seq}_time.txt`` (the toolkit / server layout), LaSOT ``RESULTS/{seq}.txt`` and ``{seq}_time.txt``.
got10k-val is scored with the GOT-10k toolkit's protocol (AO, SR0.5, SR0.75), lasot with pytracking's (AUC,
precision at 20 px, normalised precision), all as fractions in [0, 1]; got10k-test is zipped for the
evaluation server (``--zip``, default ``RESULTS.zip``). Metrics also go to ``RESULTS/metrics_<dataset>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from comba_vision.tracking.datasets import build_dataset  # noqa: E402
from comba_vision.tracking.evaluation import (  # noqa: E402
    evaluate_got10k,
    evaluate_lasot,
    read_results,
    read_times,
    result_path,
    to_jsonable,
    write_results,
    zip_got10k_submission,
)
from comba_vision.tracking.tracker import CombaTracker  # noqa: E402

DATASETS = {
    # --dataset: (registry name, split, result layout)
    "got10k-val": ("got10k", "val", "got10k"),
    "got10k-test": ("got10k", "test", "got10k"),
    "lasot": ("lasot", "test", "lasot"),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False
    )
    ap.add_argument("--checkpoint", required=True, help="tools/train_tracker.py checkpoint (last.pth)")
    ap.add_argument("--dataset", required=True, choices=sorted(DATASETS))
    ap.add_argument("--data-root", required=True, help="GOT-10k root (holding val/, test/) or LaSOT root")
    ap.add_argument("--results", required=True, help="folder for the result files")
    ap.add_argument("--zip", default=None, help="got10k-test: submission zip to write (default RESULTS.zip)")
    ap.add_argument("--sequences", default=None, help="lasot: file listing the sequences (default: the 280 of test)")
    ap.add_argument("--device", default=None, help="cuda, cuda:1, cpu (default: cuda when available)")
    ap.add_argument("--no-hann", action="store_true", help="take the raw score map's peak (no Hann window)")
    ap.add_argument("--no-amp", action="store_true", help="float32 on CUDA instead of bfloat16 autocast")
    ap.add_argument("--cuda-graph", action="store_true",
                    help="replay the network from a captured CUDA graph (several times the fps at batch 1)")
    ap.add_argument("--skip-existing", action="store_true", help="keep sequences whose result files exist")
    ap.add_argument("--json", default=None, help="metrics file (default RESULTS/metrics_<dataset>.json)")
    args = ap.parse_args(argv)
    name, split, fmt = DATASETS[args.dataset]
    try:
        if args.sequences and name != "lasot":
            raise ValueError("--sequences is for lasot (GOT-10k splits are scored on all their sequences)")
        if args.zip and args.dataset != "got10k-test":
            raise ValueError("--zip is for got10k-test (the evaluation server's submission)")
        kwargs = {"split_file": args.sequences} if args.sequences else {}
        dataset = build_dataset(name, args.data_root, split, **kwargs)
        tracker = CombaTracker.from_checkpoint(
            args.checkpoint, device=args.device, hann=not args.no_hann, amp=not args.no_amp,
            cuda_graph=args.cuda_graph,
        )
        print(
            f"{args.checkpoint}: {len(dataset)} sequences of {args.dataset} on {tracker.device} "
            f"(template {tracker.template_size}px x{tracker.template_factor:g}, search {tracker.search_size}px "
            f"x{tracker.search_factor:g}, hann {'on' if tracker.hann else 'off'})",
            flush=True,
        )
        all_times = []
        start = time.time()
        for i, seq_name in enumerate(dataset.sequence_names):
            if args.skip_existing and os.path.isfile(result_path(args.results, seq_name, fmt)):
                read_results(args.results, seq_name, fmt)  # a malformed file is an error, not a silent skip
                previous = read_times(args.results, seq_name, fmt)
                if previous is not None:
                    all_times.append(previous)
                continue
            boxes, times = tracker.run_sequence(seq_name, dataset)
            write_results(args.results, seq_name, boxes, times, fmt=fmt)
            all_times.append(times)
            print(
                f"[{i + 1}/{len(dataset)}] {seq_name}: {len(boxes)} frames, {len(times) / times.sum():.1f} fps",
                flush=True,
            )
        times = np.concatenate(all_times) if all_times else np.zeros(0)
        if times.size:
            print(
                f"speed: {times.size / times.sum():.2f} fps (frames / tracking time) over {times.size} frames; "
                f"{time.time() - start:.1f} s wall, frame decoding included"
            )
        metrics: dict = {}
        if args.dataset == "got10k-val":
            metrics = evaluate_got10k(args.results, args.data_root, split="val")
            print(
                f"GOT-10k val ({metrics['num_sequences']} sequences): AO {metrics['ao']:.4f}  "
                f"SR0.5 {metrics['sr50']:.4f}  SR0.75 {metrics['sr75']:.4f}  FPS {metrics['speed_fps']:.2f}"
            )
        elif args.dataset == "lasot":
            metrics = evaluate_lasot(args.results, args.data_root, sequences=dataset.sequence_names)
            print(
                f"LaSOT ({metrics['num_sequences']} sequences): AUC {metrics['auc']:.4f}  "
                f"P@20px {metrics['precision20']:.4f}  P_norm@0.2 {metrics['norm_precision']:.4f}"
            )
        else:
            zip_path = args.zip or os.path.normpath(args.results) + ".zip"
            members = zip_got10k_submission(args.results, zip_path, dataset.sequence_names)
            print(f"submission written to {zip_path} ({len(members)} files): upload it to the GOT-10k server")
        if metrics:
            json_path = args.json or os.path.join(args.results, f"metrics_{args.dataset}.json")
            os.makedirs(os.path.dirname(os.path.abspath(json_path)), exist_ok=True)
            with open(json_path, "w", encoding="utf-8") as f:
                json.dump(to_jsonable({"checkpoint": args.checkpoint, "dataset": args.dataset, **metrics}), f, indent=2)
            print(f"metrics written to {json_path}")
    except (ValueError, FileNotFoundError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
