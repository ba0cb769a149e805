#!/bin/bash
# session 11 call 3: the operator against SDPA with the grouped state walk (benchmark.py ops, eager and graphed); LayerNorm backward sweep
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
S="128,197,3,32,64 128,197,6,32,64 128,197,3,64 32,1025,3,64 8,4097,3,64 2,16385,3,64"
t ops
timeout 200 python3 tools/benchmark.py ops --shapes $S --providers comba comba_bidir sdpa --no-check --reps 20 --out $OUT/ops.json 2>&1 | grep "^|\|rror" | tee -a $L
t ops graphed
timeout 120 python3 tools/benchmark.py ops --shapes $S --providers comba comba_bidir sdpa --no-check --reps 20 --cuda-graph --out $OUT/ops_graph.json 2>&1 | grep "^|\|rror" | tee -a $L
t lnsweep
timeout 180 python3 .devdata/lnsweep.py 2>&1 | grep -v "Warn\|warn" | tee $OUT/lnsweep.txt | grep "best\|failed" | tee -a $L
t done
