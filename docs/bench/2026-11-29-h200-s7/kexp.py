"""Per-kernel device time (torch.profiler, 5 iterations) of one bidirectional forward+backward at
Comba-T's mixer shape (bf16) under the environment's switches, and the gradient kernels' resources."""
import json
import os

import torch
from torch.profiler import ProfilerActivity, profile

from comba_vision import bench
from comba_vision.ops import comba_bidirectional, triton_chunk

shape = tuple(int(x) for x in os.environ.get("KEXP_SHAPE", "128,197,3,32,64").split(","))
xs = bench.make_op_inputs(shape, torch.bfloat16, "cuda")
do = torch.randn(2, *xs[2].shape, device="cuda", dtype=torch.bfloat16)


def run():
    for x in xs:
        x.grad = None
    o = comba_bidirectional(*xs, merge="stack")
    o.backward(do)


for _ in range(3):
    run()
torch.cuda.synchronize()
with profile(activities=[ProfilerActivity.CUDA]) as prof:
    for _ in range(5):
        run()
    torch.cuda.synchronize()
t = {e.key: round(e.device_time_total / 5e3, 4) for e in prof.key_averages() if e.key.startswith("_")}
res = {}
for fn in [triton_chunk._bwd_grads, triton_chunk._bwd_grads_cc, triton_chunk._bwd_grads_k, triton_chunk._bwd_state,
           triton_chunk._bwd_dv_local]:
    for entry in getattr(fn, "device_caches", {}).values():
        for k in (entry[0] if isinstance(entry, tuple) else entry).values():
            k._init_handles()
            md = k.metadata
            res[fn.__name__] = f"regs={k.n_regs} spills={k.n_spills} smem={md.shared} warps={md.num_warps}"
sw = {k: v for k, v in os.environ.items() if k.startswith("COMBA_")}
print(json.dumps(dict(env=sw, ours_ms=round(sum(t.values()), 4), kernels=t, resources=res)))
