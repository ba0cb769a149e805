"""Session 15: every operator kernel at head size 32 under one (num_warps, num_stages) for all of them, at Comba-T's
and Comba-S's 224px mixer shapes with both directions' programs (B = 2 * 128): ms per forward+backward (profiler).
One configuration a process (a configuration that builds into an illegal access must not poison the next).
Args: warps stages."""
import json
import os
import sys

sys.path.insert(0, os.getcwd())
warps, stages = int(sys.argv[1]), int(sys.argv[2])
names = ["_fwd_prepare", "_fwd_prepare_blocked", "_fwd_state", "_fwd_output", "_bwd_dv_local", "_bwd_state",
         "_bwd_grads"]
os.environ["COMBA_KERNEL_CONFIG"] = ",".join(f"{n}:32:{warps}:{stages}" for n in names)
from comba_vision import bench  # noqa: E402

for shape in [(256, 197, 3, 32, 64), (256, 197, 6, 32, 64)]:
    t = bench.kernel_times(shape, iters=10)
    print(json.dumps(dict(shape=shape, warps=warps, stages=stages, times={k: round(v, 4) for k, v in t.items()})),
          flush=True)
