#!/bin/bash
# session 18 call 1: the COMBA_FUSED_OUTPUT=0 fault (probe of the forward's buffers, its regression test), head-32
# gradient options (split kernels, bf16 products in the one-kernel _bwd_grads) at Comba-T's mixer shapes, and the
# graphed operator with the 2-stage head-64 walks
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t probe
for s in 32:1025:3:64 128:197:3:64 1:1025:1:64; do
  CUDA_LAUNCH_BLOCKING=1 timeout 60 python3 .devdata/fo_probe.py $s 2>&1 | grep -v Warning | tail -4 | tee -a $L
done
t gpu test
timeout 120 python3 -m pytest -q -p no:cacheprovider tests/ops/test_comba_ops.py -m gpu -k "output_launch_at_1025" -rf 2>&1 | grep "passed\|failed\|FAIL\|Error" | tail -6 | tee -a $L
i=0; for v in "COMBA_X=1" "COMBA_SPLIT_BWD_MIN_BK=32" "COMBA_BF16_GRADS_ONE=1"; do
  i=$((i+1)); t kernels32 $i $v
  env $v timeout 110 python3 tools/benchmark.py kernels --shapes 128,196,3,32,64 8,4096,3,32,64 2,16384,3,32,64 --out $OUT/kernels32_$i.json 2>&1 | grep "^| (\|rror" | tail -4 | tee -a $L
done
t ops graphed
timeout 150 python3 tools/benchmark.py ops --shapes 128,197,3,64 128,197,6,64 32,1025,3,64 8,4097,3,64 2,16385,3,64 \
  --providers comba comba_bidir sdpa --no-check --reps 20 --cuda-graph --out $OUT/ops_graph.json 2>&1 | grep "^|\|rror" | tee -a $L
t done
