"""Capturing a CUDA graph the way every graph of this package is captured (the trainer's GraphedTrainStep, the
benchmark's --cuda-graph, the tracker's GraphedForward)."""
from __future__ import annotations

import torch

from .ops.block_kernels import fused_block_kernels


def capture(fn, warmup: int, before_each=None, device=None):
    """``fn`` run ``warmup`` times on a side stream (kernels compile, lazy state is created, the allocator
    settles), then captured as a CUDA graph; ``before_each`` runs before every warm-up call and before the
    capture. All of it inside ``fused_block_kernels()``, so the blocks' fused LayerNorm / Linear kernels are
    compiled before the capture that records them. The capture is ``thread_local``: another thread (a
    DataLoader's pin-memory thread) may call CUDA meanwhile. Returns (graph, what the captured call returned).

    A captured backward must not reach autograd nodes recorded on the default stream: a leaf tensor's
    gradient-accumulation node is created once and kept while any graph that uses it lives, with the stream of
    the forward that created it, and the captured backward then syncs with that (legacy) stream, which fails
    the capture (cudaErrorStreamCaptureImplicit, "operation would make the legacy stream depend on a capturing
    blocking stream"). So an eager forward's output on the default stream must not be kept alive across the
    capture: make such a call under ``torch.no_grad()`` or drop its output first (session 15: the benchmark's
    graphed operator timing kept one and its first backward capture failed)."""
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
            out = fn()
    return graph, out
