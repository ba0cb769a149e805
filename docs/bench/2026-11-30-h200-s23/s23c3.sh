#!/bin/bash
# session 23 call 3: the norm fold's test fixes and the parallel _fold_bwd; the MLP as one node that keeps only its
# input (COMBA_MLP_RECOMPUTE, default 1): GPU tests, graphed Comba-T against DeiT-T at 1024 / 2048px with and without
# it, then the one-run four-model table.
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t tests
timeout 170 python3 -m pytest -q -p no:cacheprovider -n 8 tests/ops/test_layer_norm.py tests/ops/test_linear.py \
  tests/ops/test_mlp.py tests/ops/test_mixer_joint.py tests/layers tests/models tests/test_bench.py -rf > $OUT/tests.txt 2>&1
grep -E "passed|failed|FAILED|Error" $OUT/tests.txt | tail -8 | tee -a $L
M="python3 tools/benchmark.py models --mode train --cuda-graph"
t models 1024 2048, defaults
timeout 100 $M --models comba_tiny deit_tiny_patch16_224 --img-size 1024 2048 --out $OUT/mlp1.json 2>&1 \
  | grep "^| [0-9]\|rror" | tee -a $L
t models 1024 2048, COMBA_MLP_RECOMPUTE=0
COMBA_MLP_RECOMPUTE=0 timeout 100 $M --models comba_tiny deit_tiny_patch16_224 --img-size 1024 2048 \
  --out /tmp/mlp0.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
t profile 1024 defaults
COMBA_FUSED_NORM=1 COMBA_FUSED_LINEAR=1 COMBA_FUSED_CONV=1 timeout 120 \
  python3 tools/benchmark.py models --mode train --models comba_tiny \
  --img-size 1024 --profile --profile-top 40 --out /tmp/p.json > $OUT/profile.txt 2>&1
grep -iE "fold|ln_|colsum|device|launch|gelu|nvjet" $OUT/profile.txt | head -30 | tee -a $L
t models: one run, every size
timeout 170 $M --img-size 224 512 1024 2048 --out $OUT/models.json 2>&1 | grep "^| \|rror" | tee -a $L
t done
