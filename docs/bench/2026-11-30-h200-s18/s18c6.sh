#!/bin/bash
# session 18 call 6: the one-walk state kernels (COMBA_STATE_GROUP=0, which keeps half work buffers) against the grouped
# walk (float32 buffers) at Comba-T's 1024px and 2048px mixer shapes: kernels, then graphed models A/B
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t kernels one walk
COMBA_STATE_GROUP=0 timeout 90 python3 tools/benchmark.py kernels --shapes 8,4096,3,32,64 --out $OUT/kernels32_g0.json 2>&1 | grep "^| (\|rror" | tail -2 | tee -a $L
t models one walk
COMBA_STATE_GROUP=0 timeout 110 python3 tools/benchmark.py models --models comba_tiny deit_tiny_patch16_224 --img-size 1024 2048 --mode train --cuda-graph --out $OUT/mlarge_g0.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
t models default
timeout 100 python3 tools/benchmark.py models --models comba_tiny deit_tiny_patch16_224 --img-size 1024 2048 --mode train --cuda-graph --out $OUT/mlarge_default.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
t done
