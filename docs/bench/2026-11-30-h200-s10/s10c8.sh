#!/bin/bash
# session 10 call 8: tests/test_bench.py on the GPU after pinning its CPU tests to the CPU and the CUDA accounting fix
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t test_bench
timeout 110 python3 -m pytest -q -n 8 -p no:cacheprovider tests/test_bench.py -rf 2>&1 | grep "passed\|failed\|FAIL\|Error" | tail -6 | tee -a $L
t done
