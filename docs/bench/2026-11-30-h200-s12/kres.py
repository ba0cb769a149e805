"""Graphed bf16 training step (fused AdamW) of Comba-T/S at 224px, batch 128: images/s with the blocks chained by
their pending residual branch (default) and called as modules (a no-op hook on a block forces that), interleaved.
Then the operator's chunk-parallel kernels at V blocks of 32 (COMBA_KERNEL_CONFIG) against the default 64."""
import os
import sys

sys.path.insert(0, os.getcwd())
import timm  # noqa: E402
import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

import comba_vision  # noqa: E402, F401
from comba_vision import bench  # noqa: E402
from comba_vision.ops import comba_bidirectional  # noqa: E402


def rate(step, batch, reps=20):
    for _ in range(3):
        step()
    torch.cuda.synchronize()
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record()
    for _ in range(reps):
        step()
    b.record()
    torch.cuda.synchronize()
    return batch * reps / (a.elapsed_time(b) / 1e3)


for name in sys.argv[1:] or ["comba_tiny", "comba_small"]:
    res = {"chained": [], "modules": []}
    for _ in range(2):
        for mode in res:
            torch.manual_seed(0)
            model = timm.create_model(name).cuda()
            if mode == "modules":
                model.blocks[0].register_forward_pre_hook(lambda mod, args: None)
            x = torch.randn(128, 3, 224, 224, device="cuda")
            res[mode].append(rate(bench._model_step(model, x, train=True, cuda_graph=True), 128))
            del model
            torch.cuda.empty_cache()
    print(name, {k: [round(v, 1) for v in vs] for k, vs in res.items()}, flush=True)

xs = bench.make_op_inputs((128, 196, 6, 32, 64), torch.bfloat16, "cuda")
do = None
for cfg in ["", "_bwd_grads:32:4:1:32", "_bwd_dv_local:32:2:1:32", "_fwd_prepare_blocked:32:2:1:32"]:
    os.environ["COMBA_KERNEL_CONFIG"] = cfg
    for _ in range(3):
        for x in xs:
            x.grad = None
        o = comba_bidirectional(*xs, merge="stack")
        do = torch.randn_like(o) if do is None else do
        o.backward(do)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(5):
            for x in xs:
                x.grad = None
            comba_bidirectional(*xs, merge="stack").backward(do)
        torch.cuda.synchronize()
    t = {e.key[:20]: e.device_time_total / 1e3 / 5 for e in prof.key_averages() if e.key.startswith("_")}
    print(f"config {cfg or 'default'}: total {sum(t.values()):.3f} ms "
          + " ".join(f"{k}={v:.3f}" for k, v in sorted(t.items(), key=lambda kv: -kv[1])), flush=True)
