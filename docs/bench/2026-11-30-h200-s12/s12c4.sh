#!/bin/bash
# session 12 call 4: the state kernels' V block (register pressure, ncu call 3): kernel times at 64/32/16; graphed models at 224 with the cap at 64 and 32
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t kbv
timeout 120 python3 .devdata/kbv.py 128:196:3:32:64 128:196:6:32:64 32:1025:3:32:64 8:4097:3:32:64 2>&1 | grep -v Warn | tee -a $L
t models default
timeout 110 python3 tools/benchmark.py models --img-size 224 --mode train --cuda-graph --out $OUT/m224.json 2>&1 | grep "^| [0-9a-z]\|rror" | tee -a $L
t models bv=32
COMBA_STATE_BV_MAX=32 timeout 80 python3 tools/benchmark.py models --models comba_tiny comba_small --img-size 224 --mode train --cuda-graph --out $OUT/m224_bv32.json 2>&1 | grep "^| [0-9a-z]\|rror" | tee -a $L
t done
