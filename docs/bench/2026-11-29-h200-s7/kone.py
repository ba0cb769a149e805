"""One bidirectional forward+backward at Comba-T's mixer shape (bf16), after a warm-up: what ncu profiles."""
import torch

from comba_vision import bench
from comba_vision.ops import comba_bidirectional

xs = bench.make_op_inputs((128, 197, 3, 32, 64), torch.bfloat16, "cuda")
for _ in range(2):
    o = comba_bidirectional(*xs)
    o.backward(torch.randn_like(o))
torch.cuda.synchronize()
