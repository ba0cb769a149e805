#!/bin/bash
# session 15 call 2: the capture failure (old capture, naming the op; the package's capture in the GPU test);
# head-32 launch options of the operator kernels at Comba-T / Comba-S shapes; LN backward row blocks at D = 384
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t capdiag2 old comba
timeout 60 python3 .devdata/capdiag2.py old comba 2>&1 | grep -v Warn | tail -12 | tee -a $L
t pytest test_cuda_graph
timeout 120 python3 -m pytest -q -x tests/test_cuda_graph.py -m gpu 2>&1 | tail -15 | tee -a $L
t lnit
timeout 40 python3 .devdata/lnit.py 2>&1 | tail -2 | tee -a $L
for c in "4 1" "4 2" "4 3" "8 1" "8 2" "2 1" "2 2"; do
  t ksweep $c
  timeout 45 python3 .devdata/ksweep.py $c 2>&1 | grep "^{\|rror" | tee -a $L
done
t done
