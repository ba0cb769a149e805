#!/bin/bash
# prepared in session 24 for the next device session: the operator's GPU tests under the final code of session 24
# (the ordered gradient kernel by default only with bf16 products, COMBA_ORDERED_GRADS=auto, a review fix made after
# the device time was spent: float16/float32 inputs back on the previous order), then the one-run four-model table.
# Copy nothing; run with carry [".devdata", ".whl"] (about 330 s).
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t tests
timeout 240 python3 -m pytest -q -p no:cacheprovider -n 8 tests/ops/test_comba_ops.py -m gpu -rf > $OUT/tests.txt 2>&1
grep -E "passed|failed|FAILED|Error" $OUT/tests.txt | tail -8 | tee -a $L
t models: one run, every size
timeout 200 python3 tools/benchmark.py models --mode train --cuda-graph --img-size 224 512 1024 2048 \
  --out $OUT/models.json 2>&1 | grep "^| \|rror" | tee -a $L
t done
