"""Session 15: the first graphed forward+backward capture of a process (call 3: still failing at (128, 197, 3, 64) when
captured on the warm-up stream; passing at B = 8). Fresh process: capture comba's forward+backward at batch B with the
given capture_error_mode on the warm-up stream, a dispatch mode naming the op that raised. Args: mode B."""
import os
import sys
import threading

sys.path.insert(0, os.getcwd())
import torch  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

from comba_vision import bench  # noqa: E402


class Watch(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.log = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.log.append(f"{func} [{threading.current_thread().name}]")
        try:
            return func(*args, **(kwargs or {}))
        except Exception as e:
            print("RAISED IN", func, threading.current_thread().name, type(e).__name__, str(e)[:80], flush=True)
            raise


mode, B = sys.argv[1], int(sys.argv[2])
xs = bench.make_op_inputs((B, 197, 3, 64), torch.bfloat16, "cuda")
fn, leaves = bench._provider_fn("comba", xs)
do = torch.randn_like(fn())
fn().backward(do)


def reset():
    for x in leaves:
        x.grad = None


w = Watch()
side = torch.cuda.Stream()
side.wait_stream(torch.cuda.current_stream())
with torch.cuda.stream(side):
    for _ in range(3):
        reset()
        fn().backward(do)
torch.cuda.current_stream().wait_stream(side)
reset()
graph = torch.cuda.CUDAGraph()
try:
    with torch.cuda.graph(graph, stream=side, capture_error_mode=mode):
        with w:
            fn().backward(do)
    graph.replay()
    torch.cuda.synchronize()
    print(f"B={B} mode={mode}: captured and replayed", flush=True)
except Exception as e:
    print(f"B={B} mode={mode}: FAILED {type(e).__name__} {str(e)[:100]}", flush=True)
    print("last ops:", w.log[-6:], flush=True)
