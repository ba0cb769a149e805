#!/bin/bash
# session 7 call 5: precomputed products at head size 32 against long sequences (kernel times, both directions)
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
for s in 32,1025,3,32,64 8,4097,3,32,64 2,16385,3,32,64; do
  for pre in 32 none; do
    t $s pre=$pre
    KEXP_SHAPE=$s COMBA_PRE_BKS=$pre timeout 40 python3 .devdata/kexp.py 2>&1 | grep "^{\|rror" | tee -a $L
  done
done
t models 2048
timeout 50 python3 tools/benchmark.py models --models comba_tiny --img-size 1024 2048 --mode train --out $OUT/m_pre.json 2>&1 | grep "^|\|rror" | tee -a $L
COMBA_PRE_BKS=none timeout 50 python3 tools/benchmark.py models --models comba_tiny --img-size 1024 2048 --mode train --out $OUT/m_nopre.json 2>&1 | grep "^|\|rror" | tee -a $L
t done
