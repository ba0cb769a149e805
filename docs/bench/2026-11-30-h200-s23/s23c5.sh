#!/bin/bash
# session 23 call 5: the fixed bf16 fold test and its neighbours on the GPU, then the one-run four-model table again
# (the final defaults; a second run for the thin speed margins).
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t tests
timeout 150 python3 -m pytest -q -p no:cacheprovider -n 8 tests/models/test_comba_vit.py tests/ops/test_mlp.py \
  tests/layers -rf > $OUT/tests.txt 2>&1
grep -E "passed|failed|FAILED|Error" $OUT/tests.txt | tail -8 | tee -a $L
t models: one run, every size
timeout 200 python3 tools/benchmark.py models --mode train --cuda-graph --img-size 224 512 1024 2048 \
  --out $OUT/models.json 2>&1 | grep "^| \|rror" | tee -a $L
t done
