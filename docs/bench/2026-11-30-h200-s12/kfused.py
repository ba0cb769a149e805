"""Kernel ms (torch.profiler, device time) of one bidirectional forward+backward (bf16, both scans in one launch,
merge "stack" as the mixer) with the state kernels' chunk-local work fused (call 2's COMBA_FUSED_STATE of
call2_fused_state.patch) off and on.
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
    for fused in [0, 1]:
        tc.FUSED_STATE = fused
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
        print(f"{(B, T, H, K, V)} fused={fused} rel.diff to unfused {diff:.1e} total {sum(t.values()):.3f} ms "
              + " ".join(f"{k}={v:.3f}" for k, v in ranked[:9]), flush=True)
