#!/bin/bash
# session 22, call 6: the final defaults (COMBA_CONV_IN_PREP=0): GPU tests of the joint node, layers, models and
# benchmark, then every model bar in one run.
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t tests
timeout 170 python3 -m pytest -q -p no:cacheprovider -n 8 tests/ops/test_mixer_joint.py tests/ops/test_layer_norm.py \
  tests/ops/test_linear.py tests/layers tests/models tests/test_bench.py -rf > $OUT/tests.txt 2>&1
grep -E "passed|failed|FAILED|Error" $OUT/tests.txt | tail -8 | tee -a $L
t models: one run, every size
timeout 150 python3 tools/benchmark.py models --mode train --cuda-graph --img-size 224 512 1024 2048 \
  --out $OUT/models.json 2>&1 | grep "^| \|rror" | tee -a $L
t done
