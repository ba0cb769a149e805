#!/bin/bash
# session 7 call 6: the joint input projection padded to an aligned width (COMBA_IN_PROJ_ALIGN): CUDA tests, graphed step
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t tests
timeout 70 python3 -m pytest -q -n 4 -p no:cacheprovider tests/models tests/layers -m gpu -rf 2>&1 | tail -2 | tee -a $L
pkill -f pytest
for a in 8 1 64 8; do
  t align $a
  COMBA_IN_PROJ_ALIGN=$a timeout 30 python3 tools/benchmark.py models --models comba_tiny --img-size 224 --mode train --cuda-graph --out $OUT/align$a.json 2>&1 | grep "^| 224\|rror" | tee -a $L
done
t done
