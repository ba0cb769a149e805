"""When the Comba blocks' LayerNorm, Linear and depthwise conv layers take the fused Triton kernels (ops.layer_norm,
ops.linear, ops.dwconv).

Those kernels save device time (H200, session 8: a CUDA-graphed Comba-T training step at 224px went from 4792
to 5653 images/s with both) but each call costs more host time than PyTorch's native kernels: a
torch.library custom op and a Triton launch instead of one native dispatch. An eager training step of
Comba-T is host-bound (the host issues its ~1300 launches slower than the GPU runs them), and there the fused
forms lost a third of the speed (2183-2427 against 1497 images/s in the same run). So by default they run
only where the host is out of the loop, inside ``fused_block_kernels()``, which the package's CUDA-graph
builders enter for their warm-up and capture (GraphedTrainStep, the benchmark's --cuda-graph, the
tracker's GraphedForward).

``COMBA_FUSED_NORM`` / ``COMBA_FUSED_LINEAR`` / ``COMBA_FUSED_CONV``: ``graph`` (default) as above, ``1`` always on
CUDA, ``0`` never. (The conv's eager A/B on the H200, session 9, with its first and slower kernels: 1130 / 2249
images/s with PyTorch's conv against 1871 / 2078 with the Triton one, within the host's noise; so it follows
the others.)
"""
from __future__ import annotations

import os
from contextlib import contextmanager

from torch import Tensor

_MODES = ("graph", "1", "0")
_ACTIVE = [0]  # nesting depth of fused_block_kernels()


def _mode(var: str) -> str:
    mode = os.environ.get(var, "graph")
    if mode not in _MODES:
        raise ValueError(f"{var} must be one of {_MODES}, got {mode!r}")
    return mode


@contextmanager
def fused_block_kernels():
    """Within this context (on CUDA) the blocks' LayerNorm and Linear layers take the fused kernels in the
    default ``graph`` mode. Enter it around a CUDA graph's warm-up *and* capture, so that the Triton
    kernels compile before the capture."""
    _ACTIVE[0] += 1
    try:
        yield
    finally:
        _ACTIVE[0] -= 1


def check_int32_span(n: int, what: str, kernels: str, switch: str) -> None:
    """The fused kernels index with 32-bit offsets: n, the elements their offsets span in the tensor named
    what, must stay below 2**31 (else a ValueError naming the kernels and the switch that turns them off)."""
    if n >= 2**31:
        raise ValueError(f"{what} has {n} elements, more than the {kernels}' 32-bit offsets reach (2**31); "
                         f"split the batch, or set {switch}=0")


def applies(var: str, x: Tensor) -> bool:
    """Whether the fused kernel switched by the environment variable ``var`` runs for activation x."""
    if not x.is_cuda:
        return False
    mode = _mode(var)
    return mode == "1" or (mode == "graph" and _ACTIVE[0] > 0)
