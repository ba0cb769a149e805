#!/bin/bash
# session 13 call 1: chunk 32 (COMBA_CHUNK) and q/k/p loaded after the V loop (COMBA_LATE_QKP) in the operator's kernels,
# kernel ms + accuracy against float64 at Comba-T/S and long shapes; graphed models at 224 with each chunk size
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
S="128:196:3:32:64 128:196:6:32:64 32:1025:3:32:64 8:4097:3:32:64"
for v in "64 0" "64 1" "32 1" "32 0"; do set -- $v
  t kchunk chunk=$1 late=$2
  COMBA_CHUNK=$1 COMBA_LATE_QKP=$2 timeout 80 python3 .devdata/kchunk.py $S 2>&1 | grep -v Warn | tee -a $L
done
t models chunk 64
timeout 80 python3 tools/benchmark.py models --img-size 224 --mode train --cuda-graph --out $OUT/m224_c64.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
t models chunk 32
COMBA_CHUNK=32 timeout 60 python3 tools/benchmark.py models --models comba_tiny comba_small --img-size 224 --mode train --cuda-graph --out $OUT/m224_c32.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
t done
