"""One Comba-T training step (bf16 autocast, batch 128, 224px) under torch.profiler: device time by the
aten op (with input shapes) that launched it, so that each kernel of the profile has a source."""
import timm
import torch
from torch.profiler import ProfilerActivity, profile

import comba_vision  # noqa: F401  (COMBA_FUSED_NORM=1 COMBA_FUSED_LINEAR=1 COMBA_FUSED_CONV=1: the graph's kernels)
from comba_vision import bench

name = __import__("sys").argv[1] if len(__import__("sys").argv) > 1 else "comba_tiny"
model = timm.create_model(name).cuda()
step = bench._model_step(model, torch.randn(128, 3, 224, 224, device="cuda"), train=True)
for _ in range(3):
    step()
torch.cuda.synchronize()
with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA], record_shapes=True) as prof:
    step()
    torch.cuda.synchronize()
ev = [e for e in prof.key_averages(group_by_input_shape=True) if e.self_device_time_total > 0]
ev.sort(key=lambda e: -e.self_device_time_total)
tot = sum(e.self_device_time_total for e in ev) / 1e3
print(f"{name}: self device time of CPU-side ops {tot:.2f} ms")
for e in ev[:45]:
    print(f"{e.self_device_time_total / 1e3:8.3f} ms  x{e.count:<4} {e.key[:40]:40s} {str(e.input_shapes)[:150]}")
