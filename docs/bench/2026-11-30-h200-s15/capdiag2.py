"""Session 15: the first graphed forward+backward capture of a process fails (cudaErrorStreamCaptureImplicit, call 1).
Fresh process per mode: `old` captures as cuda_graph.capture did (warm-up on a side stream, capture on torch's
default capture stream), naming the op that raised and the ops before it; `package` uses cuda_graph.capture as it is
now; both then check the replayed gradients against an eager backward. Args: mode provider."""
import os
import sys
import traceback

sys.path.insert(0, os.getcwd())
import torch  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

from comba_vision import bench, cuda_graph  # noqa: E402
from comba_vision.ops.block_kernels import fused_block_kernels  # noqa: E402


class Watch(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.log = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        import threading
        self.log.append((str(func), threading.current_thread().name, str(torch.cuda.current_stream())))
        try:
            return func(*args, **(kwargs or {}))
        except Exception as e:
            print("RAISED IN", func, type(e).__name__, str(e)[:90], flush=True)
            raise


def old_capture(fn, warmup, before_each=None, device=None, watch=None):
    with fused_block_kernels():
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(warmup):
                if before_each is not None:
                    before_each()
                fn()
        torch.cuda.current_stream(device).wait_stream(side)
        if before_each is not None:
            before_each()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            with watch:
                out = fn()
    return graph, out


mode, name = sys.argv[1], sys.argv[2]
shape = (128, 197, 3, 64)
xs = bench.make_op_inputs(shape, torch.bfloat16, "cuda")
fn, leaves = bench._provider_fn(name, xs)
out = fn()
do = torch.randn_like(out)
out.backward(do)
ref = [x.grad.clone() for x in leaves]


def reset():
    for x in leaves:
        x.grad = None


def fwd_bwd():
    fn().backward(do)


w = Watch()
try:
    if mode == "old":
        graph, _ = old_capture(fwd_bwd, 3, reset, watch=w)
    else:
        graph, _ = cuda_graph.capture(fwd_bwd, 3, reset)
    for _ in range(2):
        graph.replay()
    torch.cuda.synchronize()
    errs = [((x.grad.float() - r.float()).norm() / r.float().norm()).item() for x, r in zip(leaves, ref)]
    print(mode, name, "captured; replayed grads vs eager, max rel diff", max(errs), flush=True)
except Exception as e:
    print(mode, name, "FAILED", type(e).__name__, str(e)[:120], flush=True)
    print("ops before:", w.log[-8:], flush=True)
    traceback.print_exc(limit=3)
