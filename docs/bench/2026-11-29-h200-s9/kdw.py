"""Times the 3x3 conv backward (flipped forward + _dw_wgrad3) at Comba-T's 224px shape for a few blockings."""
import torch
import triton

import comba_vision.ops.dwconv as dw

a = torch.randn(128, 196, 584, device="cuda", dtype=torch.bfloat16)[..., :384]
w = torch.randn(384, 1, 3, 3, device="cuda")
dout = torch.randn(128, 196, 384, device="cuda", dtype=torch.bfloat16)
CONFIGS = [(16, 8, 128), (16, 16, 64), (16, 16, 32), (8, 32, 64), (16, 8, 128), (16, 16, 64), (16, 16, 32),
           (8, 16, 128), (16, 16, 64)]  # call 7; call 6 ran another list (its log)
for bn, it, bc in CONFIGS:
    dw.BWD3_TOKENS, dw.BWD3_ITERS, dw.BLOCK_CHANNELS = bn, it, bc
    try:
        t = triton.testing.do_bench(lambda: dw._dw_bwd_op(a, w, dout, [14, 14]), return_mode="median")
        tf = triton.testing.do_bench(lambda: dw._dw_op(a, w, None, [14, 14]), return_mode="median")
        print(f"BN={bn} ITERS={it} BC={bc}: bwd {t * 1e3:.1f} us, fwd {tf * 1e3:.1f} us", flush=True)
    except Exception as e:
        print(bn, it, bc, "failed", type(e).__name__, str(e)[:100], flush=True)
