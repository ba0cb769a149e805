"""Where a Comba-T training step's copies come from: aten::copy_ and the elementwise kernels under it, by
Python stack (one step, bf16 autocast, batch 128, 224px)."""
import timm
import torch
from torch.profiler import ProfilerActivity, profile

import comba_vision  # noqa: F401
from comba_vision import bench

model = timm.create_model("comba_tiny").cuda()
step = bench._model_step(model, torch.randn(128, 3, 224, 224, device="cuda"), train=True)
for _ in range(3):
    step()
torch.cuda.synchronize()
with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA], record_shapes=True, with_stack=True) as prof:
    step()
    torch.cuda.synchronize()
ev = [e for e in prof.key_averages(group_by_stack_n=6) if e.key in ("aten::copy_", "aten::contiguous", "aten::clone",
                                                                   "aten::fill_", "aten::zero_", "aten::_to_copy")]
ev.sort(key=lambda e: -e.device_time_total)
for e in ev[:14]:
    print(f"{e.device_time_total / 1e3:8.3f} ms x{e.count:<4} {e.key}")
    for line in e.stack[:6]:
        print("            ", line[:130])
