#!/bin/bash
# session 23 call 4: proj inside the joint node (COMBA_PROJ_IN_JOINT, default 1) and the in-place GELU backward of
# the MLP node: GPU tests, graphed Comba-T against DeiT-T at 1024 / 2048px with and without proj inside, then
# the one-run four-model table.
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t tests
timeout 230 python3 -m pytest -q -p no:cacheprovider -n 8 tests/ops/test_layer_norm.py tests/ops/test_linear.py \
  tests/ops/test_mlp.py tests/ops/test_mixer_joint.py tests/ops/test_mixer_fused.py tests/layers tests/models tests/test_bench.py -rf > $OUT/tests.txt 2>&1
grep -E "passed|failed|FAILED|Error" $OUT/tests.txt | tail -8 | tee -a $L
M="python3 tools/benchmark.py models --mode train --cuda-graph"
t models 1024 2048, defaults
timeout 100 $M --models comba_tiny deit_tiny_patch16_224 --img-size 1024 2048 --out $OUT/proj1.json 2>&1 \
  | grep "^| [0-9]\|rror" | tee -a $L
t models 1024 2048, COMBA_PROJ_IN_JOINT=0
COMBA_PROJ_IN_JOINT=0 timeout 100 $M --models comba_tiny deit_tiny_patch16_224 --img-size 1024 2048 \
  --out /tmp/proj0.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
t models: one run, every size
timeout 170 $M --img-size 224 512 1024 2048 --out $OUT/models.json 2>&1 | grep "^| \|rror" | tee -a $L
t done
