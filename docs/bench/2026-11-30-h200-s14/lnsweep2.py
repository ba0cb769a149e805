"""The residual-add LayerNorm backward (float32 stream, bf16 branch: the model's case) at Comba-S / Comba-T widths,
25088 rows, in a CUDA graph, over rows a tile (BN), row blocks a program (ITERS) and warps: us per call."""
import itertools
import os
import sys

sys.path.insert(0, os.getcwd())
import torch  # noqa: E402
import triton  # noqa: E402

import comba_vision.ops.layer_norm as ln  # noqa: E402

orig = ln._bwd_meta
for D in [int(a) for a in sys.argv[1:]] or (384,):
    N = 25088
    s = torch.randn(N, D, device="cuda")
    ds = torch.randn(N, D, device="cuda")
    dy = torch.randn(N, D, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(D, device="cuda")
    print(f"D={D} current {orig(D)}", flush=True)
    res = []
    for bn, iters, warps in itertools.product((4, 8, 16), (1, 2, 4), (2, 4, 8)):
        ln._bwd_meta = lambda D, bn=bn, iters=iters, warps=warps: dict(orig(D), BN=bn, ITERS=iters, num_warps=warps)
        try:
            t = triton.testing.do_bench_cudagraph(
                lambda: ln._add_ln_bwd_op(s, w, ds, dy, 1e-6, torch.bfloat16), rep=40) * 1e3  # noqa: B023
        except Exception as e:  # noqa: BLE001
            print(D, bn, iters, warps, "failed", type(e).__name__, flush=True)
            continue
        res.append((round(t, 1), bn, iters, warps))
    res.sort()
    print(f"D={D} best 6: {res[:6]}", flush=True)
    cur = (orig(D)['BN'], orig(D)['ITERS'], orig(D)['num_warps'])
    print(f"D={D} current: {[r for r in res if (r[1], r[2], r[3]) == cur]}", flush=True)
    ln._bwd_meta = orig
