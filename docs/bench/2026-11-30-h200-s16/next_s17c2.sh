#!/bin/bash
# prepared in session 16 for the next device session: lighter long walks (no fused output, the walks' stages), the
# head-64 gradient kernel on 8 warps (no spills when compiled here), and an
# H200 sweep of launch options at head size 64 (the table's head-64 entries are the H100's of session 1)
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
S="128,197,3,64 32,1025,3,64 8,4097,3,64"
i=0; for v in COMBA_FUSED_OUTPUT=0 COMBA_KERNEL_CONFIG=_fwd_state:64:4:2,_bwd_state:64:4:2 COMBA_KERNEL_CONFIG=_fwd_state:64:4:3,_bwd_state:64:4:3 COMBA_KERNEL_CONFIG=_bwd_grads_cc:64:8:1 "COMBA_KERNEL_CONFIG=_bwd_grads_cc:64:8:1 COMBA_BF16_GRADS=1"; do
  i=$((i+1)); t kernels $i $v
  env $v timeout 100 python3 tools/benchmark.py kernels --shapes $S --out $OUT/kernels_$i.json 2>&1 | grep "^| (\|rror" | tee -a $L
done
t sweep head 64
timeout 300 python3 tools/benchmark.py sweep --shapes 128,197,3,64 32,1025,3,64 --out $OUT/sweep64.json 2>&1 | grep -v Warning | tail -30 | tee -a $L
t done
