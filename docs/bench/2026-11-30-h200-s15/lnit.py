"""Session 15: the package's residual-add LayerNorm backward at D = 384 with 1 or 2 row blocks a program (16 rows,
4 warps), alternating, CUDA graph, us per call."""
import os
import sys

sys.path.insert(0, os.getcwd())
import torch  # noqa: E402
import triton  # noqa: E402

import comba_vision.ops.layer_norm as ln  # noqa: E402

orig = ln._bwd_meta
N, D = 25216, 384
s, ds = torch.randn(N, D, device="cuda"), torch.randn(N, D, device="cuda")
dy, w = torch.randn(N, D, device="cuda", dtype=torch.bfloat16), torch.randn(D, device="cuda")
res = {1: [], 2: []}
for _ in range(3):
    for it in (1, 2):
        ln._bwd_meta = lambda D, it=it: dict(orig(D), BN=16, ITERS=it, num_warps=4)
        res[it].append(round(triton.testing.do_bench_cudagraph(
            lambda: ln._add_ln_bwd_op(s, w, ds, dy, 1e-6, torch.bfloat16), rep=60) * 1e3, 1))  # noqa: B023
print("LN bwd D=384 us, ITERS 1 / 2:", res, flush=True)
