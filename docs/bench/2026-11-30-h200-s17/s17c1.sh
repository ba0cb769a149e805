#!/bin/bash
# prepared in session 16 for the next device session: the opt-in COMBA_HALF_BWD_BUFFERS and
# COMBA_GROUPED_HALF, COMBA_BF16_GRADS on the GPU: their tests, kernel ms and error, the grouped-walk reproducer, graphed models
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
N=""; python3 -c "import xdist" 2>/dev/null && N="-n 8"
t gpu tests
timeout 150 python3 -m pytest -q $N -p no:cacheprovider tests/ops/test_comba_ops.py -m gpu -k "half or grouped or bf16_grads or unwritten" -rf 2>&1 | grep -v "^  \|^$" | grep "passed\|failed\|FAIL\|Error" | tail -8 | tee -a $L
pkill -f pytest; sleep 1
S="128,197,3,64 128,197,6,64 32,1025,3,64 8,4097,3,64"
i=0; for v in COMBA_HALF_BWD_BUFFERS=0 COMBA_HALF_BWD_BUFFERS=1 COMBA_GROUPED_HALF=1 COMBA_BF16_GRADS=1 "COMBA_BF16_GRADS=1 COMBA_HALF_BWD_BUFFERS=1"; do
  i=$((i+1)); t kernels $i $v
  env $v timeout 100 python3 tools/benchmark.py kernels --shapes $S --out $OUT/kernels_$i.json 2>&1 | grep "^| (\|rror" | tee -a $L
done
t done
