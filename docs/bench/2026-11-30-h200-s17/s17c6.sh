#!/bin/bash
# session 17 call 6: head-64 state walks on 2 stages by default: their GPU tests, graphed models 224 and 1024
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
N=""; python3 -c "import xdist" 2>/dev/null && N="-n 12"
t gpu tests
timeout 110 python3 -m pytest -q $N -p no:cacheprovider tests/ops/test_comba_ops.py -m gpu -rf 2>&1 | grep -v "^  \|^$" | grep "passed\|failed\|FAIL\|Error" | tail -6 | tee -a $L
pkill -f pytest; sleep 1
t graphed models 224 1024
timeout 120 python3 tools/benchmark.py models --img-size 224 1024 --mode train --cuda-graph --out $OUT/msizes_graph.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
t done
