#!/bin/bash
# session 16 call 1: the half work buffers (COMBA_HALF_BUFFERS = 0 / w / 1) on the GPU: their tests, the operator's
# kernel ms and error against float64 at four shapes, the graphed models at 224 under each mode
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a $L
t tests
N=""; python3 -c "import xdist" 2>/dev/null && N="-n 8"
timeout 150 python3 -m pytest -q $N -p no:cacheprovider tests/ops/test_comba_ops.py -k "half or w_buffer or gpu_bf16_dots" -rf 2>&1 | tail -6 | tee -a $L
pkill -f pytest; sleep 1
for m in 0 w 1; do
  t kchunk HALF_BUFFERS=$m
  COMBA_HALF_BUFFERS=$m timeout 90 python3 .devdata/kchunk.py 128:197:3:64:64 128:197:6:64:64 32:1025:3:64:64 8:4097:3:64:64 2>&1 | grep "max rel\|rror" | tee -a $L
done
for m in 0 w 1; do
  t graphed models 224 HALF_BUFFERS=$m
  COMBA_HALF_BUFFERS=$m timeout 90 python3 tools/benchmark.py models --img-size 224 --mode train --cuda-graph --out $OUT/m224_half_$m.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
done
t done
