#!/bin/bash
# prepared in session 18, the second call of the next device session: launch options of the head-32 kernels on
# 32-position chunks (the table was tuned on 64), both directions, one process per configuration; then the graphed
# operator on 32-position chunks (head size 64, the shapes)
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
for c in 4:1 4:2 2:1 2:2 8:1 8:2; do
  t sweep chunk 32 $c
  COMBA_CHUNK_SIZE=32 timeout 75 python3 tools/benchmark.py sweep --both --shapes 128,196,3,32,64 8,4096,3,32,64 --configs $c \
    --out $OUT/sweep_c32_${c/:/_}.json 2>&1 | grep "^{\|rror" | cut -c1-400 | tee -a $L
done
t ops graphed chunk 32
COMBA_CHUNK_SIZE=32 timeout 150 python3 tools/benchmark.py ops --shapes 128,197,3,64 128,197,6,64 32,1025,3,64 8,4097,3,64 2,16385,3,64 \
  --providers comba comba_bidir sdpa --no-check --reps 20 --cuda-graph --out $OUT/ops_graph_c32.json 2>&1 | grep "^|\|rror" | tee -a $L
t done
