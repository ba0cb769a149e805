"""Per-kernel CUDA ms of one bidirectional forward+backward (bf16, both scans in one launch) at Comba-T's mixer
shape for several sequence lengths: what a mostly-empty last chunk costs (T = 196 = 3 * 64 + 4)."""
import os
import sys

sys.path.insert(0, os.getcwd())
import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

from comba_vision import bench  # noqa: E402
from comba_vision.ops import comba_bidirectional  # noqa: E402


def run(xs):
    return comba_bidirectional(*xs, merge="stack")


for T in [int(t) for t in (sys.argv[1:] or ["192", "196", "256", "128", "200"])]:
    xs = bench.make_op_inputs((128, T, 3, 32, 64), torch.bfloat16, "cuda")
    do = torch.randn_like(run(xs))
    for _ in range(3):
        run(xs).backward(do)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(5):
            for x in xs:
                x.grad = None
            run(xs).backward(do)
        torch.cuda.synchronize()
    t = {e.key[:20]: e.device_time_total / 1e3 / 5 for e in prof.key_averages() if e.device_time_total > 0}
    ranked = sorted(t.items(), key=lambda kv: -kv[1])
    print(f"T={T} total {sum(t.values()):.3f} ms " + " ".join(f"{k}={v:.3f}" for k, v in ranked), flush=True)
