#!/bin/bash
# session 19, call 2: the transition walk (COMBA_TRANSITION_WALK, "auto" = where the grouped walk ran): GPU tests,
# kernel times and errors against the grouped walk (=0), graphed Comba-T at 1024 / 2048px
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
N=""; python3 -c "import xdist" 2>/dev/null && N="-n 12"
t gpu tests
timeout 250 python3 -m pytest -q $N -p no:cacheprovider tests/ops/test_comba_ops.py -m gpu -rf 2>&1 | grep -v "^  \|^$" | grep "passed\|failed\|FAIL\|Error" | tail -8 | tee -a $L
pkill -f pytest; sleep 1
for tw in auto 0; do
  t kernels transition $tw
  COMBA_TRANSITION_WALK=$tw timeout 80 python3 tools/benchmark.py kernels --shapes 8,4096,3,32,64 2,16384,3,32,64 8,4097,3,64 2,16385,3,64 \
    --out $OUT/kernels_tw_$tw.json 2>&1 | grep "^| (\|rror" | tail -5 | tee -a $L
done
t kernels transition 1 at short shapes
COMBA_TRANSITION_WALK=1 timeout 50 python3 tools/benchmark.py kernels --shapes 128,196,3,32,64 32,1025,3,64 \
  --out $OUT/kernels_tw_1.json 2>&1 | grep "^| (\|rror" | tail -3 | tee -a $L
t graphed models auto
timeout 80 python3 tools/benchmark.py models --models comba_tiny deit_tiny_patch16_224 --img-size 1024 2048 \
  --mode train --cuda-graph --out $OUT/models_tw.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
t done
