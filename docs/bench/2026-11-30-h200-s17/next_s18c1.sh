#!/bin/bash
# prepared in session 17 for the next device session: the COMBA_FUSED_OUTPUT=0 fault at (32, 1025, 3, 64) (its new
# regression test, then the kernel benchmark with each of the session-17 defaults off, to find which one it needs),
# and the graphed operator with the 2-stage head-64 state walks
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t gpu test
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/ops/test_comba_ops.py -m gpu -k "output_launch_at_1025" -rf 2>&1 | grep -v "^  \|^$" | grep "passed\|failed\|FAIL\|Error" | tail -6 | tee -a $L
i=0; for v in "COMBA_FUSED_OUTPUT=0 COMBA_HALF_BWD_BUFFERS=0" "COMBA_FUSED_OUTPUT=0 COMBA_BF16_GRADS=0" "COMBA_FUSED_OUTPUT=0 COMBA_HALF_BUFFERS=0" "COMBA_FUSED_OUTPUT=0 COMBA_BF16_DOTS=0"; do
  i=$((i+1)); t kernels $i $v
  env $v CUDA_LAUNCH_BLOCKING=1 timeout 100 python3 tools/benchmark.py kernels --shapes 32,1025,3,64 --out $OUT/kernels_$i.json 2>&1 | grep "^| (\|rror\|_fwd\|_bwd" | tail -4 | tee -a $L
done
t ops graphed
timeout 200 python3 tools/benchmark.py ops --shapes 128,197,3,64 128,197,6,64 32,1025,3,64 8,4097,3,64 2,16385,3,64 \
  --providers comba comba_bidir sdpa --no-check --reps 20 --cuda-graph --out $OUT/ops_graph.json 2>&1 | grep "^|\|rror" | tee -a $L
t done
