"""Registers, spills and shared memory of each Triton kernel of one bidirectional forward+backward at
Comba-T's mixer shape (bf16)."""
import torch

from comba_vision import bench
from comba_vision.ops import comba_bidirectional, triton_chunk

xs = bench.make_op_inputs((128, 197, 3, 32, 64), torch.bfloat16, "cuda")
o = comba_bidirectional(*xs)
o.backward(torch.randn_like(o))
torch.cuda.synchronize()
for fn in [triton_chunk._fwd_prepare_blocked, triton_chunk._fwd_state, triton_chunk._fwd_output,
           triton_chunk._bwd_dv_local, triton_chunk._bwd_state, triton_chunk._bwd_grads]:
    for entry in getattr(fn, "device_caches", {}).values():
        for k in (entry[0] if isinstance(entry, tuple) else entry).values():
            try:
                k._init_handles()
            except Exception as e:
                print("init:", e)
            md = k.metadata
            print(f"{fn.__name__}: regs={getattr(k, 'n_regs', '?')} spills={getattr(k, 'n_spills', '?')} "
                  f"shared={getattr(md, 'shared', '?')} warps={getattr(md, 'num_warps', '?')} "
                  f"stages={getattr(md, 'num_stages', '?')}")
