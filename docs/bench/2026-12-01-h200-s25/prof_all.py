"""Session 25, for the next device session: every CUDA kernel (ours and PyTorch's) in one eager forward+backward of
both directions merged by sum (the operator table's comba_bidir), mean device ms over 10 calls, so that the time a
graphed call spends outside the Triton kernels (the output sum, dO for both scans, the direction sums of the
gradients) is measured rather than inferred. `python3 prof_all.py B,T,H,K ...`."""
import json
import sys

import torch
from torch.profiler import ProfilerActivity, profile

from comba_vision import bench
from comba_vision.ops import comba_bidirectional

for arg in sys.argv[1:] or ["128,197,3,64", "2,16385,3,64"]:
    shape = tuple(int(x) for x in arg.split(","))
    xs = bench.make_op_inputs(shape, torch.bfloat16, "cuda")
    do = torch.randn_like(comba_bidirectional(*xs))
    for _ in range(3):
        comba_bidirectional(*xs).backward(do)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(10):
            for x in xs:
                x.grad = None
            comba_bidirectional(*xs).backward(do)
        torch.cuda.synchronize()
    ms = {e.key[:80]: round(e.device_time_total / 1e3 / 10, 4) for e in prof.key_averages() if e.device_time_total}
    ours = sum(v for k, v in ms.items() if k.startswith("_"))
    print(json.dumps(dict(shape=shape, total=round(sum(ms.values()), 4), triton=round(ours, 4),
                          other=dict(sorted(((k, v) for k, v in ms.items() if not k.startswith("_")),
                                            key=lambda kv: -kv[1])))), flush=True)
