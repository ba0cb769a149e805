"""Every float tensor torch.empty / empty_like makes inside the operator filled with NaN first: a kernel that reads
memory no kernel wrote gives a non-finite output or gradient. Both directions (merge "stack"), bf16, on CUDA.
Args: B:T:H:K:V ..."""
import os
import sys

sys.path.insert(0, os.getcwd())
import torch  # noqa: E402

from comba_vision import bench  # noqa: E402
from comba_vision.ops import comba, comba_bidirectional  # noqa: E402

_e, _el = torch.empty, torch.empty_like


def empty(*a, **k):
    t = _e(*a, **k)
    return t.fill_(float("nan")) if t.is_floating_point() else t


def empty_like(*a, **k):
    t = _el(*a, **k)
    return t.fill_(float("nan")) if t.is_floating_point() else t


for a in sys.argv[1:]:
    B, T, H, K, V = (int(x) for x in a.split(":"))
    xs = [x.detach().requires_grad_() for x in bench.make_op_inputs((B, T, H, K, V), torch.bfloat16, "cuda")]
    for name, fn in (("bidir", lambda *x: comba_bidirectional(*x, merge="stack")),
                     ("reverse", lambda *x: comba(*x, reverse=True, backend="triton")[0])):
        for x in xs:
            x.grad = None
        torch.empty, torch.empty_like = empty, empty_like
        try:
            o = fn(*xs)
            o.backward(torch.ones_like(o))
            torch.cuda.synchronize()
        finally:
            torch.empty, torch.empty_like = _e, _el
        print((B, T, H, K, V), name, "finite:", bool(o.isfinite().all()), [bool(x.grad.isfinite().all()) for x in xs],
              flush=True)
