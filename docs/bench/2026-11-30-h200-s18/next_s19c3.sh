#!/bin/bash
# prepared in session 18, a third call for the next device session: the split gradient kernels at head size 32 (the
# models'), which session 18 saw miscompute (error 6.1) or fault on 64-position chunks though the interpreter is
# right: with TF32 products (is it the bf16 build?), and on 32-position chunks, where ptxas here gives them no spills
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
i=0; for v in "COMBA_SPLIT_BWD_MIN_BK=32 COMBA_BF16_GRADS=0" "COMBA_CHUNK_SIZE=32 COMBA_SPLIT_BWD_MIN_BK=32" \
              "COMBA_CHUNK_SIZE=32 COMBA_SPLIT_BWD_MIN_BK=32 COMBA_BF16_GRADS=0"; do
  i=$((i+1)); t kernels $i $v
  env $v timeout 110 python3 tools/benchmark.py kernels --shapes 128,196,3,32,64 8,4096,3,32,64 --out $OUT/kernels_split32_$i.json \
    2>&1 | grep "^| (\|rror" | tail -3 | tee -a $L
done
t done
