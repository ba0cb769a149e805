#!/bin/bash
# session 10 call 6: every kernel of the graphed Comba-T step by full name; graphed 224 figures (both pairs)
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t kernels by name
timeout 60 python3 .devdata/kname.py 2>&1 | grep -v "Warn\|warn" | tee -a $L
t graphed 224 both
timeout 110 python3 tools/benchmark.py models --img-size 224 --mode train --cuda-graph --out $OUT/m224_graph.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
t done
