"""LayerNorm backward (plain and residual-add) at Comba-T / Comba-S shapes, in a CUDA graph, over tile sizes,
row blocks per program and warps: us per call."""
import itertools
import os
import sys

sys.path.insert(0, os.getcwd())
import torch  # noqa: E402
import triton  # noqa: E402

import comba_vision.ops.layer_norm as ln  # noqa: E402

orig_meta = ln._meta
for D in (192, 384):
    N = 25088
    s = torch.randn(N, D, device="cuda")
    ds = torch.randn(N, D, device="cuda")
    dy = torch.randn(N, D, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(D, device="cuda")
    res = []
    for tile, iters, warps in itertools.product((2048, 4096, 8192), (1, 2, 4, 8), (2, 4, 8)):
        ln._TILE, ln._ITERS = tile, iters
        ln._meta = lambda D, warps=warps: dict(orig_meta(D), num_warps=warps)
        try:
            f_add = lambda s=s, w=w, ds=ds, dy=dy: ln._add_ln_bwd_op(s, w, ds, dy, 1e-6, torch.bfloat16)  # noqa: E731
            f_ln = lambda w=w, dy=dy: ln._ln_bwd_op(dy, w, dy, 1e-6)  # noqa: E731
            t_add = triton.testing.do_bench_cudagraph(f_add, rep=50) * 1e3
            t_ln = triton.testing.do_bench_cudagraph(f_ln, rep=50) * 1e3
        except Exception as e:  # noqa: BLE001
            print(D, tile, iters, warps, "failed", type(e).__name__, flush=True)
            continue
        res.append((t_add, t_ln, tile, iters, warps))
        print(f"D={D} tile={tile} iters={iters} warps={warps}: add_ln_bwd {t_add:.1f} us, ln_bwd (bf16) {t_ln:.1f} us",
              flush=True)
    best = min(res)
    print(f"D={D} best add_ln_bwd {best}; current (4096, 2, 4) "
          f"{[r for r in res if r[2:] == (4096, 2, 4)]}", flush=True)
