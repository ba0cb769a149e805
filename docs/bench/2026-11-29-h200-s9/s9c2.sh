#!/bin/bash
# session 9 call 2: the depthwise conv with grid positions computed in the kernel (no neighbour table) and
# 16-byte loads of the projection's rows; GPU tests, graphed Comba-T 224 with and without it, op profile
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t gpu tests
timeout 120 python3 -m pytest -q -n 4 -p no:cacheprovider tests/ops/test_dwconv.py tests/tracking/test_tracker.py -m gpu -rf 2>&1 | grep -v "^  \|^$" | tail -8 | tee -a $L
pkill -f pytest; sleep 1
for c in graph 0; do
  t graphed 224 conv=$c
  COMBA_FUSED_CONV=$c timeout 40 python3 tools/benchmark.py models --models comba_tiny --img-size 224 --mode train --cuda-graph --out $OUT/m224_graph_conv$c.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
done
t opprof
COMBA_FUSED_NORM=1 COMBA_FUSED_LINEAR=1 COMBA_FUSED_CONV=1 timeout 60 python3 .devdata/opprof.py 2>&1 | grep "_dw\|dwconv\|self device\|chunk_bwd\|reduce_kernel\|cat " | tee -a $L
t done
