#!/usr/bin/env python3
"""Train Comba models on ImageNet-1K (or any ImageFolder / tar-shard tree) with the DeiT recipe.

    python tools/train_imagenet.py                      # built-in demo: configs/demo_digits.yaml (CPU, minutes)
    python tools/train_imagenet.py --config configs/comba_tiny_in1k.yaml --data-dir /data/imagenet
    torchrun --nproc_per_node 8 tools/train_imagenet.py --config configs/comba_tiny_in1k.yaml --data-dir ...
    python tools/train_imagenet.py --config ... --resume output/comba_tiny_in1k/last.pth
    python tools/train_imagenet.py --config ... --eval-only --checkpoint output/comba_tiny_in1k/best.pth

Any config key can be overridden: ``--batch-size 256 --epochs 100 --model-kwargs '{variant: iplr}'``.
"""
from __future__ import annotations

import argparse
import os
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

from comba_vision.train.config import load_config, parse_overrides  # noqa: E402
from comba_vision.train.trainer import NonFiniteLossError, teardown_distributed, train  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=os.path.join(ROOT, "configs", "demo_digits.yaml"))
    ap.add_argument("--resume", default=None, help="checkpoint to continue from (last.pth)")
    ap.add_argument("--eval-only", action="store_true")
    ap.add_argument("--checkpoint", default=None, help="weights to evaluate with --eval-only")
    args, rest = ap.parse_known_args(argv)
    try:
        cfg = load_config(args.config, parse_overrides(rest))
        train(cfg, resume=args.resume, eval_only=args.eval_only, checkpoint=args.checkpoint)
    except (ValueError, FileNotFoundError, NonFiniteLossError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        teardown_distributed()
    return 0


if __name__ == "__main__":
    sys.exit(main())
