#!/bin/bash
# session 17 call 5: lighter long walks under the new defaults: no fused output, the state walks' pipeline stages
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
S="128,197,3,64 32,1025,3,64 8,4097,3,64"
i=0; for v in COMBA_FUSED_OUTPUT=0 COMBA_KERNEL_CONFIG=_fwd_state:64:4:2,_bwd_state:64:4:2 COMBA_KERNEL_CONFIG=_fwd_state:64:4:3,_bwd_state:64:4:3; do
  i=$((i+1)); t kernels $i $v
  env $v timeout 115 python3 tools/benchmark.py kernels --shapes $S --out $OUT/kernels_$i.json 2>&1 | grep "^| (\|rror" | tee -a $L
done
t done
