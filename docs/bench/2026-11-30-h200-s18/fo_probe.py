"""COMBA_FUSED_OUTPUT=0 fault probe: the forward's work buffers and output with the output in the state walk and from
_fwd_output, in one process, synchronised after each call (run under CUDA_LAUNCH_BLOCKING=1)."""
import os
import sys
import traceback

sys.path.insert(0, os.getcwd())
import torch  # noqa: E402

import comba_vision.ops.triton_chunk as tc  # noqa: E402
from comba_vision import bench  # noqa: E402

shape = tuple(int(x) for x in sys.argv[1].split(":"))
q, k, v, p, g, beta = (x.detach() for x in bench.make_op_inputs(shape, torch.bfloat16, "cuda"))
scale = q.shape[-1] ** -0.5
for reverse in (0, 1, tc.BOTH):
    out = {}
    for fused in (True, False):
        tc.FUSED_OUTPUT = fused
        try:
            o, _, saved = tc.comba_fwd_triton(q, k, v, p, g, beta, scale, None, False, False, reverse)
            torch.cuda.synchronize()
            out[fused] = (o.float(), [s.float() for s in saved])
        except Exception as e:
            frames = [f"{f.name}:{f.lineno}" for f in traceback.extract_tb(e.__traceback__)]
            print(shape, "reverse", reverse, "fused", fused, "FAILED", type(e).__name__, str(e)[:100],
                  " > ".join(frames[-5:]), flush=True)
            sys.exit(1)
    (o1, s1), (o0, s0) = out[True], out[False]
    diffs = {n: ((a - b).norm() / b.norm().clamp_min(1e-30)).item() for n, a, b in zip("MWUh", s0, s1)}
    print(shape, "reverse", reverse, "o rel diff", ((o0 - o1).norm() / o1.norm()).item(), "buffers", diffs,
          "nonfinite o0", (~o0.isfinite()).sum().item(), flush=True)
