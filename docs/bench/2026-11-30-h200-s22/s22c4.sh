#!/bin/bash
# session 22, call 4: the conv inside the prep kernels (COMBA_CONV_IN_PREP: c never stored, q~ .. beta formed again
# in the backward). GPU tests (mixer, layers, models, training with the decoding dataset), graphed Comba-T against
# DeiT-T with and without it, then every bar in one run.
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t tests
timeout 240 python3 -m pytest -q -p no:cacheprovider -n 8 tests/ops/test_mixer_fused.py tests/ops/test_mixer_joint.py \
  tests/ops/test_dwconv.py tests/layers tests/models tests/train -rf > $OUT/tests.txt 2>&1
grep -E "passed|failed|FAILED|Error" $OUT/tests.txt | tail -8 | tee -a $L
M="python3 tools/benchmark.py models --mode train --cuda-graph"
for env in "COMBA_CONV_IN_PREP=0" "X=1" "COMBA_CONV_IN_PREP=0" "X=1"; do
  t models 1024 2048: $env
  env $env timeout 100 $M --models comba_tiny deit_tiny_patch16_224 --img-size 1024 2048 --out /tmp/m.json 2>&1 \
    | grep "^| [0-9]\|rror" | tee -a $L
done
t models: one run, every size
timeout 200 $M --img-size 224 512 1024 2048 --out $OUT/models.json 2>&1 | grep "^| \|rror" | tee -a $L
t done
