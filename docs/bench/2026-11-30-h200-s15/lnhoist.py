"""Session 15: the residual-add LayerNorm backward with its loads issued together (hoisted) and with the next row
block's loads issued before this one's arithmetic (prefetch), against the package's kernel: us per call in a CUDA
graph, float32 stream, bf16 dy (the model's case), 25216 rows; and the max abs difference of dx / dw / db."""
import os
import sys

sys.path.insert(0, os.getcwd())
import torch  # noqa: E402
import triton  # noqa: E402
import triton.language as tl  # noqa: E402

import comba_vision.ops.layer_norm as ln  # noqa: E402


@triton.jit
def _bwd_rows(xv, dyv, dsv, m, W, cols, D, EPS: tl.constexpr, HAS_RES: tl.constexpr):
    xh, rstd, w = ln._ln_stats(xv.to(tl.float32), m, W, cols, D, EPS)
    dy = dyv.to(tl.float32)
    g = dy * w[None, :]
    c1 = tl.sum(g, axis=1) / D
    c2 = tl.sum(g * xh, axis=1) / D
    dx = rstd[:, None] * (g - c1[:, None] - xh * c2[:, None])
    if HAS_RES:
        dx += dsv.to(tl.float32)
    return dx, tl.sum(dy * xh, axis=0), tl.sum(dy, axis=0)


@triton.jit
def _ln_bwd_v(X, W, DY, DX, DWBP, DS, DR, NROWS, D, BN: tl.constexpr, BD: tl.constexpr, ITERS: tl.constexpr,
              EPS: tl.constexpr, HAS_RES: tl.constexpr, STORE_DR: tl.constexpr, PREFETCH: tl.constexpr):
    pid = tl.program_id(0)
    dw = tl.zeros([BD], dtype=tl.float32)
    db = tl.zeros([BD], dtype=tl.float32)
    cols = tl.arange(0, BD)
    rows = pid * ITERS * BN + tl.arange(0, BN)
    m = (rows[:, None] < NROWS) & (cols[None, :] < D)
    offs = rows[:, None] * D + cols[None, :]
    xv = tl.load(X + offs, mask=m, other=0.0)
    dyv = tl.load(DY + offs, mask=m, other=0.0)
    dsv = xv
    if HAS_RES:
        dsv = tl.load(DS + offs, mask=m, other=0.0)
    for it in range(ITERS):
        if PREFETCH:
            rows_n = rows + BN
            m_n = (rows_n[:, None] < NROWS) & (cols[None, :] < D) & (it + 1 < ITERS)
            offs_n = rows_n[:, None] * D + cols[None, :]
            xv_n = tl.load(X + offs_n, mask=m_n, other=0.0)
            dyv_n = tl.load(DY + offs_n, mask=m_n, other=0.0)
            dsv_n = xv_n
            if HAS_RES:
                dsv_n = tl.load(DS + offs_n, mask=m_n, other=0.0)
        dx, pdw, pdb = _bwd_rows(xv, dyv, dsv, m, W, cols, D, EPS, HAS_RES)
        tl.store(DX + offs, dx.to(DX.dtype.element_ty), mask=m)
        if STORE_DR:
            tl.store(DR + offs, dx.to(DR.dtype.element_ty), mask=m)
        dw += pdw
        db += pdb
        if PREFETCH:
            rows, m, offs, xv, dyv, dsv = rows_n, m_n, offs_n, xv_n, dyv_n, dsv_n
        else:
            rows = rows + BN
            m = (rows[:, None] < NROWS) & (cols[None, :] < D)
            offs = rows[:, None] * D + cols[None, :]
            if it + 1 < ITERS:
                xv = tl.load(X + offs, mask=m, other=0.0)
                dyv = tl.load(DY + offs, mask=m, other=0.0)
                if HAS_RES:
                    dsv = tl.load(DS + offs, mask=m, other=0.0)
    npr = tl.num_programs(0)
    tl.store(DWBP + cols * npr + pid, dw, mask=cols < D)
    tl.store(DWBP + (D + cols) * npr + pid, db, mask=cols < D)


def run_v(s, w, ds, dy, eps, prefetch, bn, iters, warps):
    D = s.shape[1]
    BD = triton.next_power_of_2(D)
    programs = triton.cdiv(s.shape[0], bn * iters)
    dx = torch.empty_like(s)
    dr = torch.empty(s.shape, dtype=torch.bfloat16, device=s.device)
    part = torch.empty(2, D, programs, device=s.device, dtype=torch.float32)
    _ln_bwd_v[(programs,)](s, w, dy, dx, part, ds, dr, s.shape[0], D, BN=bn, BD=BD, ITERS=iters, EPS=eps,
                           HAS_RES=True, STORE_DR=True, PREFETCH=prefetch, num_warps=warps)
    return dx, dr, part.sum(-1)


for D in [int(a) for a in sys.argv[1:]] or (384, 192):
    N = 25216
    s = torch.randn(N, D, device="cuda")
    ds = torch.randn(N, D, device="cuda")
    dy = torch.randn(N, D, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(D, device="cuda")
    meta = ln._bwd_meta(D)
    ref = ln._add_ln_bwd_op(s, w, ds, dy, 1e-6, torch.bfloat16)
    t0 = triton.testing.do_bench_cudagraph(lambda: ln._add_ln_bwd_op(s, w, ds, dy, 1e-6, torch.bfloat16), rep=60)  # noqa: B023
    mb = N * D * (4 + 4 + 2 + 4 + 2) / 1e6
    print(f"D={D} package {meta}: {t0 * 1e3:.1f} us ({mb / t0 / 1e3:.2f} TB/s)", flush=True)
    res = []
    for prefetch in (False, True):
        for bn in (8, 16):
            for iters in (1, 2, 4):
                for warps in (4, 8):
                    if prefetch and iters == 1:
                        continue
                    f = lambda: run_v(s, w, ds, dy, 1e-6, prefetch, bn, iters, warps)  # noqa: E731,B023
                    try:
                        out = f()
                        err = max((a.float() - b.float()).abs().max().item() for a, b in zip(out, ref))
                        t = triton.testing.do_bench_cudagraph(f, rep=40)
                    except Exception as e:  # noqa: BLE001
                        print(D, prefetch, bn, iters, warps, "failed", type(e).__name__, str(e)[:100], flush=True)
                        continue
                    res.append((round(t * 1e3, 1), prefetch, bn, iters, warps, f"{err:.1e}"))
    res.sort()
    print(f"D={D} best 8 (us, prefetch, BN, ITERS, warps, max diff): {res[:8]}", flush=True)
    print(f"D={D} same tiles: {[r for r in res if r[2:5] == (meta['BN'], meta['ITERS'], meta['num_warps'])]}",
          flush=True)
