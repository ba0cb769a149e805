"""Session 30: which part of COMBA_COMPLETE_IN_GRADS=1 makes the illegal memory access of session 29's failing case,
test_atomic_direction_sum[(1, 4100, 1, 32, 16), splr]. One shape and merge per process (an illegal access poisons the
CUDA context): prints the largest relative error against float64 or the exception."""
import sys

import torch

from comba_vision.bench import op_errors

shape = tuple(int(x) for x in sys.argv[1].split(","))
merge = sys.argv[2] if len(sys.argv) > 2 else "sum"
try:
    e = op_errors(shape, torch.bfloat16, "cuda", both=True, seed=5, merge=merge)
    torch.cuda.synchronize()
    print(shape, merge, f"max rel err {max(e.values()):.2e}", {k: round(v, 4) for k, v in e.items()})
except Exception as ex:  # noqa: BLE001 - the probe reports whatever failed
    print(shape, merge, "FAILED", type(ex).__name__, str(ex).splitlines()[0][:200])
