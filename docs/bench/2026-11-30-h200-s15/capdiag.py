"""Session 15: why the first graphed single-direction forward+backward capture of `benchmark.py ops` fails.
Runs the benchmark's sequence (forward graphed under no_grad, then forward+backward graphed) at (128, 197, 3, 64),
with a dispatch mode that reads the capture status (cudaStreamIsCapturing) after every op and names the first op
after which the capture is invalidated. Arg: order (comba, bidir_first, bwd_only)."""
import ctypes
import glob
import os
import sys
import traceback

sys.path.insert(0, os.getcwd())
import torch  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

from comba_vision import bench  # noqa: E402

libs = sorted(glob.glob(os.path.join(os.path.dirname(torch.__file__), "..", "nvidia", "*", "lib", "libcudart.so*")))
libs += sorted(glob.glob(os.path.join(os.path.dirname(torch.__file__), "lib", "libcudart*.so*")))
print("cudart:", libs[:3], flush=True)
rt = ctypes.CDLL(libs[0]) if libs else ctypes.CDLL("libcudart.so")
NAMES = {0: "none", 1: "active", 2: "INVALIDATED"}


def status(stream=None):
    s = ctypes.c_int(-1)
    h = (stream or torch.cuda.current_stream()).cuda_stream
    rc = rt.cudaStreamIsCapturing(ctypes.c_void_p(h), ctypes.byref(s))
    return NAMES.get(s.value, s.value), rc


class Watch(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.first = None
        self.log = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        before = status()
        out = func(*args, **(kwargs or {}))
        after = status()
        self.log.append((str(func), before[0], after[0]))
        if self.first is None and after[0] == "INVALIDATED":
            self.first = (str(func), before, after, [(tuple(a.shape), a.dtype, a.stride()) if torch.is_tensor(a)
                                                     else a for a in args][:6])
            print("FIRST INVALIDATING OP:", self.first, flush=True)
            traceback.print_stack(limit=12)
        return out


order = sys.argv[1] if len(sys.argv) > 1 else "comba"
shape = (128, 197, 3, 64)
provs = {"comba": ["comba"], "bidir_first": ["comba_bidir", "comba"], "bwd_only": ["comba"]}[order]
for name in provs:
    xs = bench.make_op_inputs(shape, torch.bfloat16, "cuda")
    fn, leaves = bench._provider_fn(name, xs)
    if order != "bwd_only":
        with torch.no_grad():
            print(name, "fwd graphed ms", bench._time(fn, torch.device("cuda"), 10, cuda_graph=True), flush=True)
    out = fn()
    do = torch.randn_like(out)

    def fwd_bwd(fn=fn, do=do):
        o = fn()
        o.backward(do)

    w = Watch()
    orig = bench.capture

    def watched_capture(f, warmup, before_each=None, device=None):  # noqa: B023
        def g():
            with w:  # noqa: B023
                return f()
        return orig(g, warmup, before_each, device)  # noqa: B023
    bench._captured.__globals__["capture"] = watched_capture
    try:
        print(name, "fwd+bwd graphed ms", bench._time(fwd_bwd, torch.device("cuda"), 10, grad_to_none=leaves,
                                                      cuda_graph=True), flush=True)
    except Exception:
        traceback.print_exc(limit=6)
        inv = [i for i, r in enumerate(w.log) if r[2] == "INVALIDATED"]
        print("ops logged", len(w.log), "first invalidated index", inv[:1], flush=True)
        if inv:
            for r in w.log[max(0, inv[0] - 6):inv[0] + 2]:
                print("  ", r, flush=True)
    bench._captured.__globals__["capture"] = orig
    torch.cuda.synchronize()
