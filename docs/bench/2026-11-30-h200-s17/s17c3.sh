#!/bin/bash
# session 17 call 3: the GPU suite and the operator benchmark under the new defaults (longer limits than call 2)
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
N=""; python3 -c "import xdist" 2>/dev/null && N="-n 12"
t gpu suite
timeout 320 python3 -m pytest -q $N -p no:cacheprovider tests/ops tests/layers tests/models -m gpu -rf --durations=5 2>&1 | grep -v "^  \|^$" | grep "passed\|failed\|FAIL\|Error\|s call" | tail -14 | tee -a $L
pkill -f pytest; sleep 1
t ops graphed
timeout 210 python3 tools/benchmark.py ops --shapes 128,197,3,64 128,197,6,64 32,1025,3,64 8,4097,3,64 2,16385,3,64 \
  --providers comba comba_bidir sdpa --no-check --reps 20 --cuda-graph --out $OUT/ops_graph.json 2>&1 | grep "^|\|rror" | tee -a $L
t done
