#!/bin/bash
# session 18 call 3: _bwd_dv_local on 4 warps at head size 32: its kernel times and errors, the GPU tests of the
# operator, graphed models at 224 and 1024 (all four) and Comba-T / DeiT-T at 512 and 2048
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
N=""; python3 -c "import xdist" 2>/dev/null && N="-n 12"
t kernels32
timeout 100 python3 tools/benchmark.py kernels --shapes 128,196,3,32,64 8,4096,3,32,64 --out $OUT/kernels32.json 2>&1 | grep "^| (\|rror" | tail -3 | tee -a $L
t gpu tests
timeout 150 python3 -m pytest -q $N -p no:cacheprovider tests/ops/test_comba_ops.py -m gpu -rf 2>&1 | grep -v "^  \|^$" | grep "passed\|failed\|FAIL\|Error" | tail -6 | tee -a $L
pkill -f pytest; sleep 1
t graphed models 224 1024
timeout 130 python3 tools/benchmark.py models --img-size 224 1024 --mode train --cuda-graph --out $OUT/msizes_graph.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
t graphed models 512 2048
timeout 100 python3 tools/benchmark.py models --models comba_tiny deit_tiny_patch16_224 --img-size 512 2048 --mode train --cuda-graph --out $OUT/mlarge_graph.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
t done
