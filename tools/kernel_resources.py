#!/usr/bin/env python3
"""Registers a thread, spills and shared memory of every kernel of one operator forward+backward, compiled for an
NVIDIA architecture on this machine (no GPU needed; comba_vision.ops.kernel_resources says how).

    python tools/kernel_resources.py                          # Comba-S's mixer, both directions, bf16, sm_90
    python tools/kernel_resources.py --shape 8,2048,16,128,128 --directions 1 --dtype float32
"""
from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.pop("TRITON_INTERPRET", None)  # the kernels are compiled, not interpreted
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch  # noqa: E402

from comba_vision.ops.kernel_resources import kernel_resources  # noqa: E402

COLUMNS = ("kernel", "BT", "PREC", "warps", "stages", "registers", "spill_stores", "spill_loads", "shared",
           "programs_per_sm")


def _shape(s: str):
    parts = tuple(int(x) for x in s.split(","))
    if len(parts) != 5 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"shape must be B,T,H,K,V (positive), got {s!r}")
    return parts


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", type=_shape, default=(128, 196, 6, 32, 64), help="B,T,H,K,V")
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    ap.add_argument("--directions", type=int, default=2, choices=[1, 2])
    ap.add_argument("--variant", default="splr", choices=["splr", "iplr"])
    ap.add_argument("--arch", type=int, default=90, help="compute capability x10 (90: Hopper)")
    ap.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = ap.parse_args(argv)
    rows = kernel_resources(args.shape, getattr(torch, args.dtype), args.directions, args.variant, args.arch)
    print(f"shape {args.shape}, {args.dtype}, {args.directions} direction(s), {args.variant}, sm_{args.arch}")
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    for r in rows:
        print("| " + " | ".join(str(r[c]) for c in COLUMNS) + " |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(shape=args.shape, dtype=args.dtype, directions=args.directions, variant=args.variant,
                           arch=args.arch, rows=rows), f, indent=1)
    return rows


if __name__ == "__main__":
    main()
