#!/bin/bash
# session 18 call 2: launch options of the head-32 kernels (Comba-T/S's head size) under this session's defaults, both
# directions as the models run them, at 224px (128, 196) and 1024px (8, 4096) mixer shapes; one process per
# configuration (an illegal access poisons the process); then _bwd_grads on 32-wide V blocks
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
for c in 4:1 4:2 2:1 8:1 2:2 8:2; do
  t sweep $c
  timeout 75 python3 tools/benchmark.py sweep --both --shapes 128,196,3,32,64 8,4096,3,32,64 --configs $c \
    --out $OUT/sweep32_${c/:/_}.json 2>&1 | grep "^{\|rror" | cut -c1-400 | tee -a $L
done
t bv32
COMBA_KERNEL_CONFIG=_bwd_grads:32:4:1:32 timeout 90 python3 tools/benchmark.py kernels --shapes 128,196,3,32,64 8,4096,3,32,64 \
  --out $OUT/kernels32_bv32.json 2>&1 | grep "^| (\|rror" | tail -3 | tee -a $L
t done
