#!/bin/bash
# session 17 call 2: HALF_BWD_BUFFERS and BF16_GRADS on by default: the GPU suite, the head-64 gradient kernel on
# 8 warps, the operator benchmark (graphed), graphed models 224 and 1024
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
N=""; python3 -c "import xdist" 2>/dev/null && N="-n 8"
t gpu suite
timeout 200 python3 -m pytest -q $N -p no:cacheprovider tests/ops tests/layers tests/models -m gpu -rf 2>&1 | grep -v "^  \|^$" | grep "passed\|failed\|FAIL\|Error" | tail -8 | tee -a $L
pkill -f pytest; sleep 1
t kernels grads_cc 8 warps
COMBA_KERNEL_CONFIG=_bwd_grads_cc:64:8:1 timeout 110 python3 tools/benchmark.py kernels --shapes 128,197,3,64 32,1025,3,64 --out $OUT/kernels_cc8.json 2>&1 | grep "^| (\|rror" | tee -a $L
t ops graphed
timeout 130 python3 tools/benchmark.py ops --shapes 128,197,3,64 128,197,6,64 32,1025,3,64 8,4097,3,64 2,16385,3,64 \
  --providers comba comba_bidir sdpa --no-check --reps 20 --cuda-graph --out $OUT/ops_graph.json 2>&1 | grep "^|\|rror" | tee -a $L
t graphed models 224 1024
timeout 120 python3 tools/benchmark.py models --img-size 224 1024 --mode train --cuda-graph --out $OUT/msizes_graph.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
t done
