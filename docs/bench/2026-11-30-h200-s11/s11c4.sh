#!/bin/bash
# session 11 call 4: LayerNorm backward tiles (GPU tests, graphed models at 224); block-kernel launch sweep; which graphed op capture fails
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t tests
timeout 120 python3 -m pytest -q -n 8 -p no:cacheprovider tests/ops/test_layer_norm.py tests/ops/test_dwconv.py tests/ops/test_linear.py -rf 2>&1 | tail -3 | tee -a $L
pkill -f pytest; sleep 1
t capture order
timeout 60 python3 tools/benchmark.py ops --shapes 128,197,3,32,64 --providers comba_bidir comba --no-check --reps 10 --cuda-graph 2>&1 | grep "^| (\|rror" | cut -c1-250 | tee -a $L
t graphed 224
timeout 100 python3 tools/benchmark.py models --img-size 224 --mode train --cuda-graph --out $OUT/m224_graph.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
t blksweep
timeout 220 python3 .devdata/blksweep.py 2>&1 | grep -v "Warn\|warn" | tee $OUT/blksweep.txt | grep "best\|rror" | tee -a $L
t done
