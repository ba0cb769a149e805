"""Session 6's A/B on the CPU: comba_tiny with this session's PyTorch bidirectional operator, comba_tiny with
session 5's, and deit_tiny, in one process, alternating one inference of each for 12 rounds (medians).

    git show 2f436da:comba_vision/ops/chunk_torch.py > /tmp/chunk_old.py
    PYTHONPATH=. python docs/bench/2026-11-29-cpu-s6/ab_models.py /tmp/chunk_old.py
"""
import importlib.util
import statistics
import sys
import time

import timm
import torch

import comba_vision  # noqa: F401  (registers the Comba models)
from comba_vision.ops import chunk_torch as new

ops_module = sys.modules["comba_vision.ops.comba"]  # comba_vision.ops.comba is also the name of a function
spec = importlib.util.spec_from_file_location("chunk_old", sys.argv[1])
old = importlib.util.module_from_spec(spec)
spec.loader.exec_module(old)

torch.manual_seed(0)
comba = timm.create_model("comba_tiny").eval()
deit = timm.create_model("deit_tiny_patch16_224").eval()
x = torch.randn(8, 3, 224, 224)


def comba_with(impl):
    def run():
        ops_module.comba_chunk_torch_bidir = impl.comba_chunk_torch_bidir
        return comba(x)
    return run


runs = {"comba_new": comba_with(new), "comba_old": comba_with(old), "deit": lambda: deit(x)}
times = {key: [] for key in runs}
with torch.inference_mode():
    for fn in runs.values():
        fn()
        fn()
    for _ in range(12):
        for key, fn in runs.items():
            t0 = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - t0)
med = {key: statistics.median(ts) for key, ts in times.items()}
print({key: f"{ms * 1e3:.0f} ms" for key, ms in med.items()},
      f"new/deit {med['comba_new'] / med['deit']:.2f}x  old/deit {med['comba_old'] / med['deit']:.2f}x")
