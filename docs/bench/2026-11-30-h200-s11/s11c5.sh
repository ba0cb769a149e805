#!/bin/bash
# session 11 call 5 (final): block-kernel launch options from call 4's sweep: GPU tests, graphed models at 224 (both pairs) and 512-2048; ops capture retry
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t tests
timeout 90 python3 -m pytest -q -n 8 -p no:cacheprovider tests/ops/test_dwconv.py tests/ops/test_linear.py -rf 2>&1 | tail -3 | tee -a $L
pkill -f pytest; sleep 1
t graphed 224
timeout 90 python3 tools/benchmark.py models --img-size 224 --mode train --cuda-graph --out $OUT/m224_graph.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
t sizes
timeout 130 python3 tools/benchmark.py models --models comba_tiny deit_tiny_patch16_224 --img-size 512 1024 2048 --mode train --cuda-graph --out $OUT/msizes_graph.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
t ops capture retry
timeout 45 python3 tools/benchmark.py ops --shapes 128,197,3,32,64 --providers comba comba_bidir sdpa --no-check --reps 10 --cuda-graph 2>&1 | grep "^| (\|rror" | cut -c1-250 | tee -a $L
t done
