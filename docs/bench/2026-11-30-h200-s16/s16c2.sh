#!/bin/bash
# session 16 call 2: half work buffers as the default (COMBA_HALF_BUFFERS=1): the GPU operator and model tests, a
# NaN-filled-allocation check, the operator benchmark (graphed, five image shapes), graphed models 224-2048
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
N=""; python3 -c "import xdist" 2>/dev/null && N="-n 8"
t gpu tests ops
timeout 200 python3 -m pytest -q $N -p no:cacheprovider tests/ops tests/layers tests/models -m gpu -k "not fla" -rf 2>&1 | grep -v "^  \|^$" | grep "passed\|failed\|FAIL\|Error" | tail -8 | tee -a $L
pkill -f pytest; sleep 1
t nanfill
timeout 60 python3 .devdata/nanfill_gpu.py 4:197:3:64:64 2:1025:3:64:64 1:4097:2:64:64 2:300:2:128:128 2>&1 | grep "finite\|rror" | tee -a $L
t ops graphed
timeout 150 python3 tools/benchmark.py ops --shapes 128,197,3,64 128,197,6,64 32,1025,3,64 8,4097,3,64 2,16385,3,64 \
  --providers comba comba_bidir sdpa --no-check --reps 20 --cuda-graph --out $OUT/ops_graph.json 2>&1 | grep "^|\|rror" | tee -a $L
t graphed models 224 512 1024 2048
timeout 200 python3 tools/benchmark.py models --img-size 224 512 1024 2048 --mode train --cuda-graph --out $OUT/msizes_graph.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
t done
