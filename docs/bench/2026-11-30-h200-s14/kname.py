"""Every kernel of one graphed training step (bf16): full name, launches, device ms. Args: model img batch."""
import collections
import sys

import timm
import torch
from torch.profiler import ProfilerActivity, profile

import comba_vision  # noqa: F401
from comba_vision import bench

name = sys.argv[1] if len(sys.argv) > 1 else "comba_tiny"
img = int(sys.argv[2]) if len(sys.argv) > 2 else 224
batch = int(sys.argv[3]) if len(sys.argv) > 3 else 128
model = timm.create_model(name, img_size=img).cuda()
step = bench._model_step(model, torch.randn(batch, 3, img, img, device="cuda"), train=True, cuda_graph=True)
for _ in range(3):
    step()
torch.cuda.synchronize()
with profile(activities=[ProfilerActivity.CUDA]) as prof:
    step()
    torch.cuda.synchronize()
acc = collections.defaultdict(lambda: [0, 0.0])
for e in prof.events():
    if e.device_type.name == "CUDA":
        acc[e.name][0] += 1
        acc[e.name][1] += e.device_time_total / 1e3
rows = sorted(acc.items(), key=lambda kv: -kv[1][1])
print(f"total {sum(v[1] for v in acc.values()):.2f} ms in {sum(v[0] for v in acc.values())} kernels")
for name, (n, ms) in rows[:40]:
    print(f"{ms:7.3f} ms x{n:<4} {name[:230]}")
