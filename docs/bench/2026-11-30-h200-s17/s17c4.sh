#!/bin/bash
# session 17 call 4: the corrected bf16-products test, graphed models at 512 and 2048 under the new defaults
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
N=""; python3 -c "import xdist" 2>/dev/null && N="-n 6"
t gpu tests
timeout 120 python3 -m pytest -q $N -p no:cacheprovider tests/ops/test_comba_ops.py -m gpu -k "bf16_dots or bf16_grads" -rf 2>&1 | grep -v "^  \|^$" | grep "passed\|failed\|FAIL\|Error" | tail -6 | tee -a $L
pkill -f pytest; sleep 1
t graphed models 512 2048
timeout 240 python3 tools/benchmark.py models --img-size 512 2048 --mode train --cuda-graph --out $OUT/msizes_graph.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
t done
