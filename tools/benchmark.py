#!/usr/bin/env python3
"""Benchmarks.  ``python tools/benchmark.py ops`` times the Comba operator against fla and SDPA;
``models`` times whole backbones (Comba vs DeiT); ``tracker`` times the one-stream tracker on each backbone
(network forward and end-to-end ``CombaTracker`` frames per second); ``sweep`` tunes kernel launch configs
(``--configs 4:1 8:2``; ``--both``: both scan directions, as the models run);
``kernels`` lists each Triton kernel's time in both directions' forward+backward with the largest error against
float64, under the process's COMBA_* settings (``COMBA_BF16_GRADS=0 python tools/benchmark.py kernels``).

With no arguments: a correctness check against the float64 reference, then the operator timings at the
default shapes for the device present (the six issue shapes on CUDA, a small one on the CPU).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch  # noqa: E402

from comba_vision import bench  # noqa: E402
from comba_vision.tracking.evaluation import atomic_write_text  # noqa: E402


def _shape(s: str):
    parts = tuple(int(x) for x in s.split(","))
    if len(parts) not in (4, 5):
        raise argparse.ArgumentTypeError(f"shape must be B,T,H,K or B,T,H,K,V, got {s!r}")
    return parts


def _config(s: str) -> tuple[int, int]:
    try:
        warps, stages = (int(x) for x in s.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a launch configuration is warps:stages, e.g. 4:2, got {s!r}") from None
    return warps, stages


def _write_json(path: str, env: dict, **payload) -> None:
    """One run's record: the environment and what was measured (atomic_write_text: a temporary file renamed into
    place, so that a run killed while writing keeps the previous record)."""
    atomic_write_text(path, json.dumps(dict(environment=env, **payload), indent=1))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd")
    op = sub.add_parser("ops", help="time the operator against fla and SDPA")
    op.add_argument("--shapes", type=_shape, nargs="*", help="B,T,H,K or B,T,H,K,V (default: the standard shapes)")
    op.add_argument("--providers", nargs="*", default=list(bench.PROVIDERS), choices=bench.PROVIDERS)
    op.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    op.add_argument("--reps", type=int, default=50)
    op.add_argument("--out", default="benchmark_ops.json", help="JSON file for the records")
    op.add_argument("--no-check", action="store_true", help="skip the correctness check")
    op.add_argument("--profile", action="store_true", help="per-kernel CUDA times of our operator instead")
    op.add_argument("--cuda-graph", action="store_true",
                    help="time replays of CUDA graphs of the calls (device time, no host launches), every provider")
    op.add_argument("--fla-max-configs", type=int, default=0,
                    help="keep only this many configs per fla autotuner (0: all); reported in the JSON")
    md = sub.add_parser("models", help="images/s (and peak GPU memory) of Comba vs DeiT models")
    md.add_argument("--models", nargs="*", default=None, help="timm model names (default: Comba-T/S and DeiT-T/S)")
    md.add_argument("--img-size", type=int, nargs="*", default=[224])
    md.add_argument("--batch", type=int, default=None)
    md.add_argument("--mode", choices=["train", "infer", "both"], default=None,
                    help="default: both on CUDA, infer on the CPU")
    md.add_argument("--comba-kwargs", type=json.loads, default=None,
                    help='JSON for the Comba models\' timm.create_model, e.g. \'{"mixer_recompute": true}\'')
    md.add_argument("--compile", action="store_true", help="time torch.compile(model) for every model")
    md.add_argument("--profile", action="store_true",
                    help="also profile one step per model: device time by kernel, launches, wall time")
    md.add_argument("--cuda-graph", action="store_true",
                    help="capture each model's whole step (forward, backward, AdamW) as a CUDA graph; time replays")
    md.add_argument("--profile-top", type=int, default=15, help="kernels listed by --profile")
    md.add_argument("--foreach-adamw", action="store_true",
                    help="training steps use torch's foreach AdamW instead of the fused one the trainer uses")
    md.add_argument("--out", default="benchmark_models.json")
    md.add_argument("--plot", default=None, help="PNG of images/s against input size (default: next to --out)")
    tr = sub.add_parser("tracker", help="frames/s of the one-stream tracker on Comba and ViT backbones")
    tr.add_argument("--backbones", nargs="*", default=None,
                    help="timm backbone names (default: Comba-T/S and DeiT-T/S on CUDA, comba_micro and "
                         "vit_tiny_patch16_224 on the CPU)")
    tr.add_argument("--template-size", type=int, default=128)
    tr.add_argument("--search-size", type=int, default=256)
    tr.add_argument("--batch", type=int, default=1)
    tr.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"],
                    help="autocast dtype on CUDA (float32: none); the CPU runs float32")
    tr.add_argument("--reps", type=int, default=50)
    tr.add_argument("--full", action=argparse.BooleanOptionalAction, default=True,
                    help="also time CombaTracker.track end to end on synthetic 640x480 frames (default: on)")
    tr.add_argument("--backbone-kwargs", type=json.loads, default=None,
                    help='JSON passed to every backbone\'s timm.create_model, e.g. \'{"depth": 2}\'')
    tr.add_argument("--cuda-graph", action="store_true",
                    help="replay the network from a captured CUDA graph (CombaTracker(cuda_graph=True)); CUDA only")
    tr.add_argument("--out", default="benchmark_tracker.json")
    sv = sub.add_parser("saved", help="memory kept for the backward per image (activations), by block part")
    sv.add_argument("--models", nargs="*", default=None, help="timm model names (default: Comba-T/S and DeiT-T/S)")
    sv.add_argument("--img-size", type=int, nargs="*", default=[224, 512])
    sv.add_argument("--batch", type=int, default=1)
    sv.add_argument("--comba-kwargs", type=json.loads, default=None,
                    help='JSON for the Comba models\' timm.create_model, e.g. \'{"mixer_recompute": true}\'')
    sv.add_argument("--out", default="benchmark_saved.json")
    sw = sub.add_parser("sweep", help="time each Triton kernel under a few launch configurations (CUDA)")
    sw.add_argument("--shapes", type=_shape, nargs="*", default=[(128, 197, 3, 64), (8, 2048, 16, 128)])
    sw.add_argument("--configs", type=_config, nargs="*", default=None,
                    help="warps:stages pairs to time, e.g. 4:1 8:2 (default: bench.SWEEP_CONFIGS)")
    sw.add_argument("--both", action="store_true", help="both scan directions in one launch, as the models run")
    sw.add_argument("--out", default="benchmark_sweep.json")
    kn = sub.add_parser("kernels", help="each Triton kernel's ms in both directions' forward+backward, with the "
                                         "largest error against float64 (CUDA)")
    kn.add_argument("--shapes", type=_shape, nargs="*",
                    default=[(128, 197, 3, 64), (32, 1025, 3, 64), (8, 4097, 3, 64)])
    kn.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    kn.add_argument("--iters", type=int, default=5)
    kn.add_argument("--no-check", action="store_true",
                    help="skip the errors against float64 (their reference takes most of a long shape's time)")
    kn.add_argument("--out", default="benchmark_kernels.json")
    args = ap.parse_args(argv)
    if args.cmd == "kernels":
        env = bench.environment()
        try:  # refused where there is no CUDA device (each shape's own failure is a record)
            # the JSON rewritten after each shape: a run cut short keeps the shapes it measured
            records = bench.bench_kernels(args.shapes, getattr(torch, args.dtype), args.iters, check=not args.no_check,
                                          on_record=lambda recs: _write_json(args.out, env, records=recs))
        except RuntimeError as e:
            ap.error(str(e))
        _write_json(args.out, env, records=records)
        print(bench.kernels_table(records))
        print(f"wrote {args.out}")
        return
    if args.cmd == "sweep":
        env = bench.environment()
        res = bench.sweep_kernels(args.shapes, args.configs or bench.SWEEP_CONFIGS, both=args.both)
        _write_json(args.out, env, **res)
        print(f"wrote {args.out}")
        return
    if args.cmd == "saved":
        env = bench.environment()
        names = args.models or [n for pair in bench.MODEL_PAIRS for n in pair]
        records = [bench.saved_activations(n, s, args.batch, comba_kwargs=args.comba_kwargs)
                   for s in args.img_size for n in names]
        _write_json(args.out, env, records=records)
        print(bench.saved_table(records))
        print(f"wrote {args.out}")
        return
    if args.cmd == "tracker":
        env = bench.environment()
        print(json.dumps(env))
        records = bench.bench_tracker(args.backbones, args.template_size, args.search_size, args.batch,
                                      getattr(torch, args.dtype), reps=args.reps, full=args.full,
                                      backbone_kwargs=args.backbone_kwargs, cuda_graph=args.cuda_graph)
        _write_json(args.out, env, records=records)
        print(bench.tracker_table(records))
        print(f"wrote {args.out}")
        return
    if args.cmd == "models":
        env = bench.environment()
        print(json.dumps(env))
        names = args.models or [n for pair in bench.MODEL_PAIRS for n in pair]
        mode = args.mode or ("both" if torch.cuda.is_available() else "infer")
        records = []
        for size in args.img_size:
            for train in ([False, True] if mode == "both" else [mode == "train"]):
                records += bench.bench_models(names, size, args.batch, train, comba_kwargs=args.comba_kwargs,
                                              compile=args.compile, profile=args.profile,
                                              cuda_graph=args.cuda_graph, profile_top=args.profile_top,
                                              fused_adamw=not args.foreach_adamw)
                _write_json(args.out, env, records=records)  # after every size: a cut-short run keeps it
        print(bench.models_table(records))
        plot = args.plot or os.path.splitext(args.out)[0] + ".png"
        bench.plot_models(records, plot)
        print(f"wrote {args.out} and {plot}")
        return
    if args.cmd is None:
        args = ap.parse_args(["ops"] + (argv or []))
    env = bench.environment()
    print(json.dumps(env))
    if args.profile:
        for shape in args.shapes or bench.OP_SHAPES:
            bench.profile_op(shape, getattr(torch, args.dtype))
        return
    if args.fla_max_configs:
        env["fla_autotune_pruned_to"] = args.fla_max_configs
        print(f"pruned {bench.prune_fla_autotune(args.fla_max_configs)} fla autotuners")
    if not args.no_check:
        bench.check_op()
    records = bench.bench_ops(args.shapes, args.providers, getattr(torch, args.dtype), reps=args.reps,
                              cuda_graph=args.cuda_graph,
                              on_record=lambda recs: _write_json(args.out, env, records=recs))  # after each shape
    _write_json(args.out, env, records=records)
    print(bench.ops_table(records))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
