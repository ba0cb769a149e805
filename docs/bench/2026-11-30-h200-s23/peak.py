"""Where a training step's peak memory is: one eager step (the fused block kernels on, as in the package's graphs;
bf16 autocast) under torch.cuda's memory history, the allocations replayed to the peak, and the largest live
tensors there named by the innermost frame of this package (or timm / torch) that made them.
Usage: python peak.py MODEL IMG BATCH"""
import collections
import sys

import timm
import torch

import comba_vision  # noqa: F401  (registers the models)
from comba_vision.ops import fused_block_kernels

name, img, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
model = timm.create_model(name, img_size=img).cuda().train()
x = torch.randn(batch, 3, img, img, device="cuda")


def step():
    with fused_block_kernels(), torch.autocast("cuda", dtype=torch.bfloat16):
        out = model(x)
    out.float().logsumexp(-1).mean().backward()


for _ in range(2):  # compile, and let every .grad exist
    step()
torch.cuda.synchronize()
start = torch.cuda.memory_allocated()
torch.cuda.reset_peak_memory_stats()
torch.cuda.memory._record_memory_history(max_entries=500000)
step()
torch.cuda.synchronize()
snap = torch.cuda.memory._snapshot()
torch.cuda.memory._record_memory_history(enabled=None)
peak = torch.cuda.max_memory_allocated()


def where(frames):
    for f in frames:
        fn = f.get("filename", "")
        if "comba_vision" in fn or "/timm/" in fn:
            return f"{fn.split('site-packages/')[-1].split('/work/')[-1]}:{f.get('line')} {f.get('name')}"
    f = frames[0] if frames else {}
    return f"{f.get('filename', '?')}:{f.get('line')} {f.get('name')}"


events = [e for trace in snap["device_traces"] for e in trace]
live, cur, best, best_i, best_live = {}, 0, -1, -1, None
for i, e in enumerate(events):
    if e["action"] == "alloc":
        live[e["addr"]] = (e["size"], where(e.get("frames", [])))
        cur += e["size"]
    elif e["action"] in ("free_completed",) and e["addr"] in live:
        cur -= live.pop(e["addr"])[0]
    if cur > best:
        best, best_i, best_live = cur, i, dict(live)
print(f"{name} {img}px batch {batch}: peak {peak / 2**30:.3f} GiB; allocated before the step {start / 2**30:.3f}; "
      f"step's own peak {best / 2**30:.3f} at event {best_i} of {len(events)}")
print("allocation at the peak:", where(events[best_i].get("frames", [])))
by_site = collections.Counter()
for size, site in best_live.values():
    by_site[site] += size
print("live at the peak, by site (MiB):")
for site, size in by_site.most_common(25):
    print(f"  {size / 2**20:9.1f}  {site}")
