"""Session 25: the long-sequence walk at head size 64 under one setting (COMBA_* in the environment), one process
per setting. `python3 kt25.py err`: relative errors of both directions' output and gradients against the PyTorch path
in float64 (on the GPU) at two long shapes where the transition walk runs; `python3 kt25.py time`: each kernel's ms
(torch.profiler) of both directions' forward+backward at the operator table's two long shapes. A second argument:
`h32` the models' (head size 32) long mixer shapes instead; `h64all` all four of the table's image shapes (errors at
three shorter ones). KT_WEAK_DECAY=1: the error check with gates a hundred times weaker; =const: one gate of -1e-5
everywhere. One JSON line."""
import json
import os
import sys

import torch

from comba_vision import bench

TIMED = [(8, 4097, 3, 64, 64), (2, 16385, 3, 64, 64)]
CHECKED = [(2, 4097, 3, 64, 64), (1, 16385, 2, 64, 64)]
if sys.argv[2:] == ["h64all"]:  # the operator table's four image shapes
    TIMED = [(128, 197, 3, 64, 64), (32, 1025, 3, 64, 64), (8, 4097, 3, 64, 64), (2, 16385, 3, 64, 64)]
    CHECKED = [(4, 197, 3, 64, 64), (2, 1025, 3, 64, 64), (2, 4097, 3, 64, 64)]
if sys.argv[2:] == ["h32"]:
    TIMED = [(8, 4096, 3, 32, 64), (2, 16384, 3, 32, 64)]
    CHECKED = [(2, 4096, 3, 32, 64), (1, 16384, 2, 32, 64)]


def errors(shape):
    op = bench._op_call(True)
    xs = [x.detach() for x in bench.make_op_inputs(shape, torch.bfloat16, "cuda")]
    weak = os.environ.get("KT_WEAK_DECAY")
    if weak == "const":  # one tiny gate everywhere: e^c_last = 0.99936 each chunk, the same rounding every step
        xs[4] = torch.full_like(xs[4], -1e-5)
    elif weak:  # gates a hundred times weaker: the state remembers ~40 chunks, not ~1
        xs[4] = xs[4] / 100
    xs = [x.requires_grad_() for x in xs]
    o = op(*xs)
    do = torch.randn(o.shape, generator=torch.Generator().manual_seed(1)).to("cuda", torch.bfloat16)
    o.backward(do)
    xr = [x.detach().double().requires_grad_() for x in xs]
    ref = op(*xr, backend="torch")
    ref.backward(do.double())

    def rel(a, b):
        return round(((a.detach().double() - b).norm() / b.norm()).item(), 5)
    return dict(o=rel(o, ref), **{n: rel(x.grad, r.grad) for n, x, r in zip(bench.OP_GRAD_NAMES, xs, xr)})


rec = dict(settings=bench.comba_settings(), mode=" ".join(sys.argv[1:]), weak=os.environ.get("KT_WEAK_DECAY", ""))
try:
    if sys.argv[1] == "err":
        rec["errors"] = {str(s): errors(s) for s in CHECKED}
        rec["max_err"] = max(max(e.values()) for e in rec["errors"].values())
        for s in TIMED:
            bench.kernel_times(s, iters=1, both=True)
    else:
        for s in TIMED:
            kt = bench.kernel_times(s, iters=10, both=True)
            rec[str(s)] = dict(total=round(sum(kt.values()), 4), **{k: round(v, 4) for k, v in sorted(
                kt.items(), key=lambda kv: -kv[1])})
except Exception as e:
    rec["error"] = f"{type(e).__name__}: {e}"[:300]
print(json.dumps(rec), flush=True)
