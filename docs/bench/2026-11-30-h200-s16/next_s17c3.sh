#!/bin/bash
# prepared in session 16 for the next device session, after next_s17c1.sh (which would pass 600 s with this):
# (copy nanfill_gpu.py from this folder into .devdata first) the grouped-walk reproducer under COMBA_GROUPED_HALF=1 and the graphed models under the opt-in switches
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t nanfill COMBA_GROUPED_HALF=1
COMBA_GROUPED_HALF=1 timeout 120 python3 .devdata/nanfill_gpu.py 4:197:3:64:64 2:1025:3:64:64 1:4097:2:64:64 2:16385:3:64:64 2>&1 | grep "finite\|rror" | tee -a $L
i=0; for v in COMBA_HALF_BWD_BUFFERS=1 COMBA_GROUPED_HALF=1; do
  i=$((i+1))
  t graphed models 224 1024 $v
  env $v timeout 120 python3 tools/benchmark.py models --img-size 224 1024 --mode train --cuda-graph --out $OUT/models_$i.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
done
t done
