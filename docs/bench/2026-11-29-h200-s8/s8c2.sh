#!/bin/bash
# session 8 call 2: fused LayerNorm on the GPU (tests; CUDA model against CPU model), kernels by aten op with
# shapes (Comba-T, DeiT-T), models at 224 graphed and eager with and without the fused norm
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t gpu tests
timeout 200 python3 -m pytest -q -n 8 -p no:cacheprovider tests/ops/test_layer_norm.py tests/models tests/layers -m gpu -rf 2>&1 | grep -v "^  \|^$" | tail -8 | tee -a $L
pkill -f pytest; sleep 1
t opprof
timeout 60 python3 .devdata/opprof.py comba_tiny 2>&1 | grep -v Warn | head -48 | tee -a $L
timeout 40 python3 .devdata/opprof.py deit_tiny_patch16_224 2>&1 | grep -v Warn | head -25 | tee -a $L
t models graphed
timeout 100 python3 tools/benchmark.py models --img-size 224 --mode train --cuda-graph --out $OUT/m224_graph.json 2>&1 | grep "^|\|rror" | tee -a $L
t comba graphed without the fused norm
COMBA_FUSED_NORM=0 timeout 60 python3 tools/benchmark.py models --models comba_tiny comba_small --img-size 224 --mode train --cuda-graph --out $OUT/m224_graph_nonorm.json 2>&1 | grep "^|\|rror" | tee -a $L
t models eager
timeout 80 python3 tools/benchmark.py models --img-size 224 --mode train --out $OUT/m224.json 2>&1 | grep "^|\|rror" | tee -a $L
t done
