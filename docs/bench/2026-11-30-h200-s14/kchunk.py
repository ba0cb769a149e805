"""Kernel ms (torch.profiler, device time) of one bidirectional forward+backward (bf16, merge "stack" as the mixer)
under this process's COMBA_* settings, with the relative error of output and gradients against the torch path in
float64. Args: B:T:H:K:V ..."""
import os
import sys

sys.path.insert(0, os.getcwd())
import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

from comba_vision import bench  # noqa: E402
from comba_vision.ops import comba_bidirectional  # noqa: E402

tag = " ".join(f"{k}={v}" for k, v in os.environ.items() if k.startswith("COMBA_"))
for a in sys.argv[1:]:
    B, T, H, K, V = (int(x) for x in a.split(":"))
    xs = bench.make_op_inputs((B, T, H, K, V), torch.bfloat16, "cuda")
    o = comba_bidirectional(*xs, merge="stack")
    do = torch.randn_like(o)
    o.backward(do)
    xr = [x.detach().double().requires_grad_() for x in xs]
    orf = comba_bidirectional(*xr, merge="stack", backend="torch")
    orf.backward(do.double())
    err = [((o.double() - orf).norm() / orf.norm()).item()] + [
        ((x.grad.double() - r.grad).norm() / r.grad.norm()).item() for x, r in zip(xs, xr)]
    for _ in range(3):
        for x in xs:
            x.grad = None
        comba_bidirectional(*xs, merge="stack").backward(do)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(5):
            for x in xs:
                x.grad = None
            comba_bidirectional(*xs, merge="stack").backward(do)
        torch.cuda.synchronize()
    t = {e.key[:22]: e.device_time_total / 1e3 / 5 for e in prof.key_averages() if e.device_time_total > 0}
    ops = {k: v for k, v in t.items() if k.startswith("_")}
    ranked = sorted(ops.items(), key=lambda kv: -kv[1])
    print(f"{(B, T, H, K, V)} [{tag}] max rel err {max(err):.1e} ops {sum(ops.values()):.3f} ms "
          f"all {sum(t.values()):.3f} "
          + " ".join(f"{k}={v:.3f}" for k, v in ranked), flush=True)
