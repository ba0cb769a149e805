#!/usr/bin/env python3
"""Score tracking results on GOT-10k val or LaSOT, or zip GOT-10k test results for the evaluation server.

    python tools/eval_tracker.py --dataset got10k-val --results out/got10k_val --data-root /data/got10k
    python tools/eval_tracker.py --dataset lasot --results out/lasot --data-root /data/lasot --plots out/plots
    python tools/eval_tracker.py --dataset got10k-test --results out/got10k_test --zip-submission sub.zip \\
        --data-root /data/got10k

GOT-10k results use the toolkit layout ``RESULTS/{seq}/{seq}_001.txt`` (+ ``{seq}_time.txt``), LaSOT results the
pytracking layout ``RESULTS/{seq}.txt``; see comba_vision/tracking/evaluation.py for the protocols. Scores are
printed as percentages and written, as fractions with the curves, to ``--json`` (default
``RESULTS/metrics_<dataset>.json``).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)


from comba_vision.tracking.evaluation import (  # noqa: E402
    evaluate_got10k,
    evaluate_lasot,
    plot_curves,
    to_jsonable,
    zip_got10k_submission,
)

_ROWS = {
    "got10k-val": [("AO", "ao"), ("SR0.5", "sr50"), ("SR0.75", "sr75"), ("FPS", "speed_fps")],
    "lasot": [("AUC", "auc"), ("P@20px", "precision20"), ("P_norm@0.2", "norm_precision")],
}


def format_table(name: str, dataset: str, metrics: dict) -> str:
    """A one-row table of the headline scores (percentages; FPS as is)."""
    cols = _ROWS[dataset]
    head = f"{'tracker':<24} | " + " | ".join(f"{c:>10}" for c, _ in cols)
    cells = []
    for col, key in cols:
        value = metrics[key]
        cells.append(f"{value:>10.2f}" if col == "FPS" else f"{100.0 * value:>10.2f}")
    row = f"{name:<24} | " + " | ".join(cells)
    return "\n".join([head, "-" * len(head), row])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", required=True, choices=["got10k-val", "got10k-test", "lasot"])
    ap.add_argument("--results", required=True, help="folder of result files")
    ap.add_argument("--data-root", default=None, help="GOT-10k root (holding val/, test/) or LaSOT root")
    ap.add_argument("--name", default=None, help="tracker name for the table and plots (default: results folder)")
    ap.add_argument("--sequences", default=None,
                    help="LaSOT: file listing the sequences, or 'all' for every sequence under the root "
                    "(default: the 280 test sequences of the protocol)")
    ap.add_argument("--plots", default=None, help="folder for the PNG curves")
    ap.add_argument("--json", default=None, help="metrics file (default: RESULTS/metrics_<dataset>.json)")
    ap.add_argument("--zip-submission", default=None, help="GOT-10k: write the server submission zip here")
    args = ap.parse_args(argv)
    name = args.name or os.path.basename(os.path.normpath(args.results))
    try:
        if args.zip_submission:
            if not args.dataset.startswith("got10k"):
                raise ValueError("--zip-submission is for GOT-10k results")
            sequences = None
            if args.data_root:
                split = args.dataset.split("-")[1]
                with open(os.path.join(args.data_root, split, "list.txt"), encoding="utf-8") as f:
                    sequences = [s.strip() for s in f if s.strip()]
            members = zip_got10k_submission(args.results, args.zip_submission, sequences)
            print(f"wrote {args.zip_submission}: {len(members)} files")
        if args.dataset == "got10k-test":
            if not args.zip_submission:
                raise ValueError("GOT-10k test ground truth is withheld: pass --zip-submission ZIP")
            return 0
        if not args.data_root:
            raise ValueError("--data-root is required to score results")
        if args.dataset == "got10k-val":
            metrics = evaluate_got10k(args.results, args.data_root, split="val")
        else:
            metrics = evaluate_lasot(args.results, args.data_root, sequences=args.sequences)
        print(format_table(name, args.dataset, metrics))
        json_path = args.json or os.path.join(args.results, f"metrics_{args.dataset}.json")
        os.makedirs(os.path.dirname(os.path.abspath(json_path)), exist_ok=True)
        with open(json_path, "w", encoding="utf-8") as f:
            json.dump(to_jsonable({"tracker": name, "dataset": args.dataset, **metrics}), f, indent=2)
        print(f"metrics written to {json_path}")
        if args.plots:
            kinds = ["success"] if args.dataset == "got10k-val" else ["success", "precision", "norm_precision"]
            for kind in kinds:
                curve = metrics["success_curve" if kind == "success" else f"{kind}_curve"]
                path = plot_curves({name: curve}, os.path.join(args.plots, f"{args.dataset}_{kind}.png"), kind=kind)
                print(f"plot written to {path}")
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
