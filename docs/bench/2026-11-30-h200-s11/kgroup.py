"""Per-kernel CUDA ms of one bidirectional forward+backward (bf16, both scans in one launch) at long sequences,
for several group sizes of the state kernels' grouped walk (COMBA_STATE_GROUP; 0 = one walk). Args: B:T ..."""
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


shapes = [tuple(int(x) for x in a.split(":")) for a in (sys.argv[1:] or ["2:16384", "8:4096"])]
for B, T in shapes:
    xs = bench.make_op_inputs((B, T, 3, 32, 64), torch.bfloat16, "cuda")
    do = torch.randn_like(run(xs))
    ref = None
    for G in [0, "auto", 4, 8, 16]:
        tc.STATE_GROUP = G
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
        used = tc._state_group(-(-T // 64), 2 * B * 3, 64, 32, xs[0].device)
        print(f"B={B} T={T} G={G} (used {used}) rel.diff to G=0 {diff:.1e} total {sum(t.values()):.3f} ms "
              + " ".join(f"{k}={v:.3f}" for k, v in ranked[:9]), flush=True)
