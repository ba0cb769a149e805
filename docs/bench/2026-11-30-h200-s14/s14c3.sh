#!/bin/bash
# session 14 call 3: split gradient kernels from head size 64 (default now), FusedMlp (fc1 + GELU, GELU's gradient
# with fc1's bias gradient in one kernel): GPU tests; graphed models 224; LayerNorm backward sweep
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t tests linear model
timeout 90 python3 -m pytest -q -n 8 -p no:cacheprovider tests/ops/test_linear.py tests/layers/test_fused.py tests/models/test_comba_vit.py -k "cuda or gpu or gelu or mlp or patch" -rf 2>&1 | tail -3 | tee -a $L
pkill -f pytest; sleep 1
t graphed 224
timeout 110 python3 tools/benchmark.py models --img-size 224 --mode train --cuda-graph --out $OUT/m224_graph.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
t tests operator head 64
timeout 130 python3 -m pytest -q -n 8 -p no:cacheprovider tests/ops/test_comba_ops.py tests/ops/test_bidirectional.py -k "gpu_matches or short_last or T197 or one_launch_matches" -rf 2>&1 | tail -3 | tee -a $L
pkill -f pytest; sleep 1
t ln sweep
timeout 70 python3 .devdata/lnsweep2.py 384 2>&1 | grep "^D=" | tee -a $L
t done
