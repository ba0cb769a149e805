"""One bidirectional forward+backward at Comba-S's mixer shape (bf16, merge stack as the mixer): what ncu profiles."""
import torch

from comba_vision import bench
from comba_vision.ops import comba_bidirectional

xs = bench.make_op_inputs((128, 196, 6, 32, 64), torch.bfloat16, "cuda")
for _ in range(2):
    o = comba_bidirectional(*xs, merge="stack")
    o.backward(torch.randn_like(o))
torch.cuda.synchronize()
