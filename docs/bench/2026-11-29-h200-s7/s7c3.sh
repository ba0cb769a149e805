#!/bin/bash
# session 7 call 3: graph test (fixed); gradient-kernel variants at Comba-T's mixer shape; where the copies come from
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t graph test
timeout 100 python3 -m pytest -q -p no:cacheprovider tests/test_bench.py -m gpu -rf 2>&1 | grep -v "^  \|^$" | tail -12 | tee -a $L
t variants
timeout 40 python3 .devdata/kexp.py 2>&1 | grep "^{" | tee -a $L
COMBA_SPLIT_BWD_MIN_BK=32 timeout 50 python3 .devdata/kexp.py 2>&1 | grep "^{\|rror" | tee -a $L
COMBA_PRE_MIN_BK=32 timeout 50 python3 .devdata/kexp.py 2>&1 | grep "^{\|rror" | tee -a $L
COMBA_KERNEL_CONFIG=_bwd_grads:32:8:1 timeout 50 python3 .devdata/kexp.py 2>&1 | grep "^{\|rror" | tee -a $L
COMBA_SPLIT_BWD_MIN_BK=32 COMBA_KERNEL_CONFIG=_bwd_grads_cc:32:2:1,_bwd_grads_k:32:2:1 timeout 50 python3 .devdata/kexp.py 2>&1 | grep "^{\|rror" | tee -a $L
COMBA_SPLIT_BWD_MIN_BK=32 COMBA_KERNEL_CONFIG=_bwd_grads_cc:32:8:1,_bwd_grads_k:32:8:1 timeout 50 python3 .devdata/kexp.py 2>&1 | grep "^{\|rror" | tee -a $L
t copies
timeout 80 python3 .devdata/copies.py 2>&1 | grep -v Warn | tee -a $L
t done
