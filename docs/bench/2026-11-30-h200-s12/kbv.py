"""Kernel ms (torch.profiler, device time) of one bidirectional forward+backward (bf16, both scans in one launch,
merge "stack" as the mixer) with the state kernels' V block capped at 64, 32, 16 (call 4's temporary
COMBA_STATE_BV_MAX, a cap in _state_block_v; the same can be had from COMBA_KERNEL_CONFIG's V block).
Args: B:T:H:K:V ..."""
import os
import sys

sys.path.insert(0, os.getcwd())
import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

import comba_vision.ops.triton_chunk as tc  # noqa: E402
from comba_vision import bench  # noqa: E402
from comba_vision.ops import comba_bidirectional  # noqa: E402


def run(xs):
    return comba_bidirectional(*xs, merge="stack")


shapes = [tuple(int(x) for x in a.split(":")) for a in sys.argv[1:]]
for B, T, H, K, V in shapes:
    xs = bench.make_op_inputs((B, T, H, K, V), torch.bfloat16, "cuda")
    do = torch.randn_like(run(xs))
    ref = None
    for bv in [64, 32, 16]:
        tc.STATE_BV_MAX = bv
        for _ in range(3):
            for x in xs:
                x.grad = None
            o = run(xs)
            o.backward(do)
        grads = [x.grad.float() for x in xs]
        if ref is None:
            ref = (o.float(), grads)
        diff = max([((o.float() - ref[0]).norm() / ref[0].norm()).item()]
                   + [((a - b).norm() / b.norm()).item() for a, b in zip(grads, ref[1])])
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(5):
                for x in xs:
                    x.grad = None
                run(xs).backward(do)
            torch.cuda.synchronize()
        t = {e.key[:20]: e.device_time_total / 1e3 / 5 for e in prof.key_averages() if e.device_time_total > 0}
        ranked = sorted(t.items(), key=lambda kv: -kv[1])
        print(f"{(B, T, H, K, V)} state_bv_max={bv} rel.diff to the first {diff:.1e} total {sum(t.values()):.3f} ms "
              + " ".join(f"{k}={v:.3f}" for k, v in ranked[:9]), flush=True)
