#!/bin/bash
# session 9 call 4: sum_rows for the partial sums, the 3x3 conv backward with elementwise accumulators: GPU tests,
# graphed models at 224, op profile, larger sizes
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t gpu tests
timeout 170 python3 -m pytest -q -n 8 -p no:cacheprovider tests/ops/test_reduce.py tests/ops/test_dwconv.py tests/ops/test_layer_norm.py tests/ops/test_linear.py tests/ops/test_mixer_fused.py tests/models tests/layers tests/train/test_step.py tests/tracking/test_tracker.py tests/test_bench.py -m gpu -rf 2>&1 | grep -v "^  \|^$" | tail -8 | tee -a $L
pkill -f pytest; sleep 1
t graphed 224
timeout 70 python3 tools/benchmark.py models --img-size 224 --mode train --cuda-graph --out $OUT/m224_graph.json 2>&1 | grep "^|\|rror" | tee -a $L
t opprof
COMBA_FUSED_NORM=1 COMBA_FUSED_LINEAR=1 COMBA_FUSED_CONV=1 timeout 60 python3 .devdata/opprof.py 2>&1 | head -45 | tee -a $L
t sizes
timeout 120 python3 tools/benchmark.py models --models comba_tiny deit_tiny_patch16_224 --img-size 512 1024 2048 --mode train --cuda-graph --out $OUT/msizes_graph.json 2>&1 | grep "^|\|rror" | tee -a $L
t done
