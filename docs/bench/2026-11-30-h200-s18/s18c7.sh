#!/bin/bash
# session 18 call 7: chunks per group of the grouped state walk (COMBA_STATE_GROUP) for Comba-T's graphed training step
# at 2048px (auto: 8 chunks a group of 256) and 1024px (auto: 4 of 64)
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
for v in auto 16 4 32; do
  t 2048 G=$v
  COMBA_STATE_GROUP=$v timeout 60 python3 tools/benchmark.py models --models comba_tiny --img-size 2048 --mode train --cuda-graph --out $OUT/g${v}_2048.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
done
for v in 8 2; do
  t 1024 G=$v
  COMBA_STATE_GROUP=$v timeout 40 python3 tools/benchmark.py models --models comba_tiny --img-size 1024 --mode train --cuda-graph --out $OUT/g${v}_1024.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
done
t done
