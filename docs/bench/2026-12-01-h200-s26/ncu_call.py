"""Session 26, for the next device session: one forward+backward of both directions merged by sum (the operator
table's comba_bidir, bf16) at one shape, after three unprofiled calls (compiling), the fourth inside an NVTX range
"prof" so that `ncu --nvtx --nvtx-include "prof/"` profiles only its kernels. `python3 ncu_call.py B,T,H,K`."""
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
torch.cuda.nvtx.range_push("prof")
comba_bidirectional(*xs).backward(do)
torch.cuda.synchronize()
torch.cuda.nvtx.range_pop()
