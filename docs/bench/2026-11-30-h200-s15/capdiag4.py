"""Session 15: which earlier step makes the first forward+backward capture fail at (128, 197, 3, 64) (call 4:
the capture
on the warm-up stream passed after an eager backward; the benchmark's sequence failed). Fresh process per case:
noeager: no eager backward before cuda_graph.capture; eager: one eager backward first; fwdgraph: a no-grad forward
graph captured first (then an eager backward); bench: bench._time as the benchmark calls it. Arg: case."""
import os
import sys
import threading

sys.path.insert(0, os.getcwd())
import torch  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

from comba_vision import bench, cuda_graph  # noqa: E402


class Watch(TorchDispatchMode):
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        try:
            return func(*args, **(kwargs or {}))
        except Exception as e:
            print("RAISED IN", func, threading.current_thread().name, type(e).__name__, str(e)[:80], flush=True)
            raise


case = sys.argv[1]
dev = torch.device("cuda")
xs = bench.make_op_inputs((128, 197, 3, 64), torch.bfloat16, "cuda")
fn, leaves = bench._provider_fn("comba", xs)
if case in ("fwdgraph", "bench"):
    with torch.no_grad():
        print("fwd graphed ms", bench._time(fn, dev, 5, cuda_graph=True), flush=True)
do = torch.randn_like(fn())
if case in ("eager", "fwdgraph"):
    fn().backward(do)


def reset():
    for x in leaves:
        x.grad = None


def fwd_bwd():
    with Watch():
        fn().backward(do)


try:
    if case == "bench":
        print("fwd+bwd graphed ms", bench._time(fwd_bwd, dev, 5, grad_to_none=leaves, cuda_graph=True), flush=True)
    else:
        graph, _ = cuda_graph.capture(fwd_bwd, 3, reset)
        graph.replay()
        torch.cuda.synchronize()
    print(f"{case}: captured and replayed", flush=True)
except Exception as e:
    print(f"{case}: FAILED {type(e).__name__} {str(e)[:100]}", flush=True)
