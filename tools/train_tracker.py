#!/usr/bin/env python3
"""Train the one-stream Comba tracker (OSTrack recipe) on GOT-10k / LaSOT / TrackingNet / COCO.

    python tools/train_tracker.py --config configs/tracking/got10k_comba_tiny.yaml --data-root-got10k /data/got10k \\
        --backbone-checkpoint output/comba_tiny_in1k/best.pth
    torchrun --nproc_per_node 4 tools/train_tracker.py --config configs/tracking/got10k_comba_tiny.yaml \\
        --data-root-got10k /data/got10k --backbone-checkpoint output/comba_tiny_in1k/best.pth
    torchrun --nproc_per_node 4 tools/train_tracker.py --config configs/tracking/lasot_comba_tiny.yaml \\
        --data-root-lasot /data/lasot --data-root-got10k /data/got10k --data-root-trackingnet /data/trackingnet \\
        --data-root-coco /data/coco --backbone-checkpoint output/comba_tiny_in1k/best.pth
    python tools/train_tracker.py --config ... --data-root-got10k ... --resume output/comba_tiny_got10k/last.pth

Any config key can be overridden (``--epochs 10 --batch-size 16 --backbone-kwargs '{depth: 2}'``); an unknown
key is an error. ``--backbone`` also takes a timm plain ViT (``--backbone deit_tiny_patch16_224``, with a ViT
ImageNet checkpoint or state dict as ``--backbone-checkpoint``) for comparison. Dataset roots:
``--data-root-<name> PATH`` for each entry of ``datasets``, or a whole list with
``--datasets '[{name: got10k, root: /data/got10k, split: train, ratio: 1}]'``.
"""

from __future__ import annotations

import argparse
import os
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

from comba_vision.tracking.config import load_track_config, parse_track_overrides  # noqa: E402
from comba_vision.tracking.train import train_tracker  # noqa: E402
from comba_vision.train.trainer import NonFiniteLossError, teardown_distributed  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False
    )
    ap.add_argument("--config", default=os.path.join(ROOT, "configs", "tracking", "got10k_comba_tiny.yaml"))
    ap.add_argument("--resume", default=None, help="checkpoint to continue from (last.pth)")
    args, rest = ap.parse_known_args(argv)
    try:
        cfg = load_track_config(args.config, parse_track_overrides(rest))
        train_tracker(cfg, resume=args.resume)
    except (ValueError, FileNotFoundError, NonFiniteLossError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        teardown_distributed()
    return 0


if __name__ == "__main__":
    sys.exit(main())
