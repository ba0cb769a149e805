"""Session 24: the one-kernel gradient kernel's forms (COMBA_ORDERED_GRADS, warps, bf16 products), one process per
setting. `python3 kt.py err`: errors of output and gradients against float64 at two small shapes, and one
forward+backward at each timed shape (compiles them); `python3 kt.py time`: each kernel's ms (torch.profiler) of both
directions' forward+backward at the models' mixer shapes (head size 32), or with a third argument `h64` at the
operator table's shapes (head size 64). One JSON line."""
import json
import sys

import torch

from comba_vision import bench
from comba_vision.ops import triton_chunk

TIMED = [(128, 196, 3, 32, 64), (8, 4096, 3, 32, 64), (2, 16384, 3, 32, 64)]
SMALL = [(4, 196, 3, 32, 64), (2, 1024, 3, 32, 64)]
if sys.argv[2:] == ["h64"]:
    TIMED = [(128, 197, 3, 64, 64), (32, 1025, 3, 64, 64), (8, 4097, 3, 64, 64), (2, 16385, 3, 64, 64)]
    SMALL = [(4, 197, 3, 64, 64), (2, 1025, 3, 64, 64)]

rec = dict(settings=bench.comba_settings(), ordered=getattr(triton_chunk, "ORDERED_GRADS", "old"),
           mode=" ".join(sys.argv[1:]))
try:
    if sys.argv[1] == "err":
        rec["errors"] = {str(s): bench.op_errors(s, torch.bfloat16) for s in SMALL}
        rec["max_err"] = max(max(e.values()) for e in rec["errors"].values())
        for s in TIMED:
            bench.kernel_times(s, iters=1, both=True)
    else:
        for s in TIMED:
            kt = bench.kernel_times(s, iters=10, both=True)
            rec[str(s)] = dict(bwd_grads=round(kt.get("_bwd_grads", float("nan")), 4),
                               bwd_grads_cc=round(kt.get("_bwd_grads_cc", float("nan")), 4),
                               total=round(sum(kt.values()), 4))
except Exception as e:
    rec["error"] = f"{type(e).__name__}: {e}"[:300]
print(json.dumps(rec), flush=True)
