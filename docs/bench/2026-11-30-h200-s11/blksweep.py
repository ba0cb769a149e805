"""Launch options of the block kernels at Comba-T / Comba-S shapes (224px, batch 128, bf16), in CUDA graphs:
the depthwise conv's forward (_dw_fwd, also the data gradient) and weight gradient (_dw_wgrad3), and the Linear
bias gradient (_colsum). us per call (conv) or per the block's four bias gradients (colsum)."""
import itertools
import os
import sys

sys.path.insert(0, os.getcwd())
import torch  # noqa: E402
import triton  # noqa: E402

import comba_vision.ops.dwconv as dw  # noqa: E402
import comba_vision.ops.linear as lin  # noqa: E402


def bench(fn):
    return triton.testing.do_bench_cudagraph(fn, rep=40) * 1e3


def best(rows, name, default):
    rows.sort()
    print(f"{name}: best {rows[:3]}; default {[r for r in rows if r[1:] == default]}", flush=True)


for C in (384, 768):
    a = torch.randn(128, 196, C + 200, device="cuda", dtype=torch.bfloat16)[..., :C]
    w = torch.randn(C, 1, 3, 3, device="cuda")
    b = torch.randn(C, device="cuda")
    dout = torch.randn(128, 196, C, device="cuda", dtype=torch.bfloat16)
    rows = []
    for bt, bc, warps in itertools.product((32, 64, 128), (32, 64, 128), (2, 4)):
        dw.BLOCK_TOKENS, dw.BLOCK_CHANNELS, dw.FWD_WARPS = bt, bc, warps
        rows.append((bench(lambda a=a, w=w, b=b: dw._dw_op(a, w, b, [14, 14])), bt, bc, warps))
        print(f"C={C} fwd {rows[-1]}", flush=True)
    best(rows, f"C={C} _dw_fwd (tokens, channels, warps)", (64, 64, 4))
    dw.BLOCK_TOKENS, dw.BLOCK_CHANNELS, dw.FWD_WARPS = 64, 64, 4
    rows = []
    for bt, it, bc, warps in itertools.product((16, 32), (4, 8, 16), (64, 128), (2, 4)):
        dw.BWD3_TOKENS, dw.BWD3_ITERS, dw.BWD3_CHANNELS, dw.BWD3_WARPS = bt, it, bc, warps
        rows.append((bench(lambda a=a, w=w, d=dout: dw._dw_bwd_op(a, w, d, [14, 14])), bt, it, bc, warps))
        print(f"C={C} bwd {rows[-1]}", flush=True)
    best(rows, f"C={C} conv backward (wgrad tokens, iters, channels, warps)", (16, 16, 64, 4))
    dw.BWD3_TOKENS, dw.BWD3_ITERS, dw.BWD3_CHANNELS, dw.BWD3_WARPS = 16, 16, 64, 4

for widths in ((192, 584, 768, 192), (384, 1168, 1536, 384)):
    dys = [torch.randn(128, 196, c, device="cuda", dtype=torch.bfloat16) for c in widths]
    rows = []
    for br, bc, progs, warps in itertools.product((32, 64), (128, 256), (1024, 2048), (4, 8)):
        lin._BR, lin._BC, lin._PROGRAMS, lin._WARPS = br, bc, progs, warps

        def four(dys=dys):
            for d in dys:
                lin._bias_grad_op(d)
        rows.append((bench(four), br, bc, progs, warps))
        print(f"{widths} colsum {rows[-1]}", flush=True)
    best(rows, f"{widths} bias grads (rows, cols, programs, warps)", (32, 128, 1024, 4))
