"""Attribute a Comba-T training step's small kernels (copies, reductions, fills) to aten ops, shapes and source
lines: one non-graphed bf16-autocast step under fused_block_kernels, torch.profiler with shapes and stacks."""
import json
import sys

import timm
import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

import comba_vision  # noqa: F401
from comba_vision.ops import fused_block_kernels

img, batch = int(sys.argv[1]), int(sys.argv[2])
model = timm.create_model("comba_tiny", img_size=img).cuda().train()
x = torch.randn(batch, 3, img, img, device="cuda")
y = torch.randint(0, 1000, (batch,), device="cuda")
opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)


def step():
    with fused_block_kernels():
        with torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False):
            loss = F.cross_entropy(model(x), y)
        loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


for _ in range(3):
    step()
torch.cuda.synchronize()
with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA], record_shapes=True, with_stack=True) as prof:
    step()
    torch.cuda.synchronize()
WANT = ("copy", "to_copy", "clone", "contiguous", "sum", "fill", "zero", "cat", "add", "mul", "reduce", "gelu", "empty",
        "index", "flip", "mean", "div", "sub", "where", "stack", "pad", "narrow")
rows = []
for e in prof.key_averages(group_by_input_shape=True, group_by_stack_n=8):
    if not e.key.startswith("aten::") or e.device_time_total <= 0:
        continue
    if not any(w in e.key for w in WANT):
        continue
    stack = [s for s in (e.stack or []) if "comba_vision" in s or "torch/nn" in s or "timm" in s][:5]
    rows.append((e.device_time_total / 1e3, e.count, e.key, str(e.input_shapes)[:160], stack))
rows.sort(key=lambda r: -r[0])
tot = 0
for ms, n, key, shapes, stack in rows[:60]:
    tot += ms
    print(f"{ms:7.3f} ms x{n:3d} {key} {shapes}")
    for s in stack:
        print("        ", s)
print("listed", round(tot, 3))
json.dump([dict(ms=r[0], n=r[1], key=r[2], shapes=r[3], stack=r[4]) for r in rows], open(sys.argv[3], "w"), indent=1)
