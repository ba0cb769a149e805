"""session 20, call 4 (the row-walk kernels were dropped afterwards; this ran against them): the depthwise conv's
row walks (COMBA_CONV_ROWS) against the token-block kernels, bf16, in CUDA graphs: forward, then backward (data +
weight gradients), us a call, at Comba-T's mixer conv (C = 384 of 584-wide rows) for 224 / 1024 / 2048px; errors of
the row walks against the token-block kernels' results (float32 weights)."""
import json
import sys

import torch

import comba_vision.ops.dwconv as dw


def timed(fn, reps=100):
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for _ in range(10):
            fn()
    g.replay()
    torch.cuda.synchronize()
    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    e0.record()
    for _ in range(reps):
        g.replay()
    e1.record()
    torch.cuda.synchronize()
    return e0.elapsed_time(e1) / reps / 10 * 1000


def setup(B, gh, C=384, W=584):
    N = gh * gh + 1
    gen = torch.Generator(device="cuda").manual_seed(0)
    a = torch.randn(B, N, W, device="cuda", generator=gen).bfloat16()[..., :C]
    w = torch.randn(C, 1, 3, 3, device="cuda", generator=gen) / 3
    b = torch.randn(C, device="cuda", generator=gen)
    dout = torch.randn(B, N, C, device="cuda", generator=gen).bfloat16()
    da = torch.empty(B, N, W, device="cuda", dtype=torch.bfloat16)[..., :C]
    return a, w, b, dout, da


def rel(x, ref):
    return ((x.float() - ref).norm() / ref.norm()).item()


def run(tag, B, gh, cfg, call, out):
    for k, v in BASE.items():
        setattr(dw, k, v)
    for k, v in cfg.items():
        setattr(dw, k, v)
    res = call()
    rec = dict(kind=tag, B=B, grid=gh, cfg=cfg, us=round(timed(call), 2))
    out.append(rec)
    return res, rec


FWD = [dict(ROWS=False)] + [dict(ROWS=True, ROWS_BX=bx, ROWS_R=r, ROWS_BC=bc, ROWS_WARPS=nw) for bx, r, bc, nw in
                            [(32, 8, 64, 4), (32, 8, 64, 8), (16, 8, 64, 4), (32, 16, 64, 4), (32, 4, 64, 4),
                             (32, 8, 32, 2), (16, 4, 128, 4)]]
BWD = [dict(ROWS=False)] + [dict(ROWS=True, WROWS_BX=bx, WROWS_R=r, WROWS_BC=bc, WROWS_WARPS=nw) for bx, r, bc, nw in
                            [(16, 16, 64, 4), (16, 16, 32, 2), (16, 16, 64, 8), (16, 8, 64, 4), (16, 32, 64, 4),
                             (32, 16, 64, 8), (8, 16, 64, 2)]]
BASE = {k: getattr(dw, k) for c in FWD + BWD for k in c}


def main(path):
    out = []
    for B, gh in [(128, 14), (8, 64), (2, 128)]:
        a, w, b, dout, da = setup(B, gh)
        seg = [1, 1, gh, gh]  # the class token, then the grid (as the models lay them out)
        ref = None
        for cfg in FWD:
            y, rec = run("fwd", B, gh, cfg, lambda a=a, w=w, b=b, seg=seg: dw._dw_launch(a, w, b, seg), out)
            ref = y.float() if ref is None else ref
            rec["err"] = rel(y, ref)
            print(json.dumps(rec), flush=True)
        refb = None
        for cfg in BWD:
            (d, dwb), rec = run("bwd", B, gh, cfg, lambda a=a, w=w, dout=dout, seg=seg, da=da:
                                dw._dw_bwd_launch(a, w, dout, seg, da=da), out)
            refb = (d.float().clone(), dwb.clone()) if refb is None else refb
            rec["err"] = [rel(d, refb[0]), rel(dwb, refb[1])]
            print(json.dumps(rec), flush=True)
    with open(path, "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
