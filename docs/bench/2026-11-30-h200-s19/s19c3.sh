#!/bin/bash
# session 19, call 3: the grouped transition walk: its GPU tests, kernel times at the long shapes, graphed Comba-T at
# 1024 / 2048px, the graphed operator against SDPA at the long shapes
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
N=""; python3 -c "import xdist" 2>/dev/null && N="-n 12"
t gpu tests
timeout 160 python3 -m pytest -q $N -p no:cacheprovider tests/ops/test_comba_ops.py -m gpu -k "transition or walk_mode or grouped or unwritten or state_group" -rf 2>&1 | grep -v "^  \|^$" | grep "passed\|failed\|FAIL\|Error" | tail -8 | tee -a $L
pkill -f pytest; sleep 1
t kernels
timeout 150 python3 tools/benchmark.py kernels --shapes 8,4096,3,32,64 2,16384,3,32,64 8,4097,3,64 2,16385,3,64 \
  --out $OUT/kernels_tg.json 2>&1 | grep "^| (\|rror" | tail -5 | tee -a $L
t graphed models
timeout 80 python3 tools/benchmark.py models --models comba_tiny deit_tiny_patch16_224 --img-size 1024 2048 \
  --mode train --cuda-graph --out $OUT/models_tg.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
t ops graphed
timeout 100 python3 tools/benchmark.py ops --shapes 8,4097,3,64 2,16385,3,64 \
  --providers comba comba_bidir sdpa --no-check --reps 20 --cuda-graph --out $OUT/ops_graph_tg.json 2>&1 | grep "^|\|rror" | tee -a $L
t done
