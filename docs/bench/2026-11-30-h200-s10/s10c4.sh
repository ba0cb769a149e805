#!/bin/bash
# session 10 call 4: partial-row reduction layouts timed in a CUDA graph; in-graph kernel profile of Comba-T 224
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t reductions
timeout 60 python3 .devdata/kred.py 2>&1 | tee -a $L
t graph profile
timeout 60 python3 tools/benchmark.py models --models comba_tiny --img-size 224 --mode train --cuda-graph --profile --profile-top 45 --out $OUT/m224_graph_prof.json 2>&1 | grep -v "Warn\|warn\|^{" | tee -a $L
t done
