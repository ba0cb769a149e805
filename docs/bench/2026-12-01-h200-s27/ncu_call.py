"""Session 27: one forward+backward of both directions merged by sum (the operator table's comba_bidir, bf16) at one
shape, after three unprofiled calls (compiling), the fourth between cudaProfilerStart and cudaProfilerStop, so that
`ncu --profile-from-start off` profiles its kernels, the backward's included (session 26's NVTX range was per
thread, and autograd runs the backward on its own thread, so it caught the forward only).
`python3 ncu_call.py B,T,H,K`."""
import sys

import torch

from comba_vision import bench
from comba_vision.ops import comba_bidirectional

shape = tuple(int(x) for x in sys.argv[1].split(","))
xs = bench.make_op_inputs(shape, torch.bfloat16, "cuda")
do = torch.randn_like(comba_bidirectional(*xs))
for _ in range(3):
    comba_bidirectional(*xs).backward(do)
torch.cuda.synchronize()
for x in xs:
    x.grad = None
torch.cuda.cudart().cudaProfilerStart()
comba_bidirectional(*xs).backward(do)
torch.cuda.synchronize()
torch.cuda.cudart().cudaProfilerStop()
