#!/bin/bash
# prepared in session 23 for the next device session: the tests changed after session 23's last full GPU run (the
# layer tests' shared set-up, and whatever the review changes), then the one-run four-model table of the defaults
# (the norm fold, the MLP node, proj inside the joint node) for the thin speed margins. Copy to .devdata/ and run
# with carry [".devdata", ".whl"] (about 280 s).
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t tests
timeout 230 python3 -m pytest -q -p no:cacheprovider -n 8 tests/ops/test_layer_norm.py tests/ops/test_linear.py \
  tests/ops/test_mlp.py tests/ops/test_mixer_joint.py tests/layers tests/models -rf > $OUT/tests.txt 2>&1
grep -E "passed|failed|FAILED|Error" $OUT/tests.txt | tail -8 | tee -a $L
t models: one run, every size
timeout 200 python3 tools/benchmark.py models --mode train --cuda-graph --img-size 224 512 1024 2048 \
  --out $OUT/models.json 2>&1 | grep "^| \|rror" | tee -a $L
t done
