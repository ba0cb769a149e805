#!/bin/bash
# session 22, call 2: the memory changes (output node keeps the scans' sum, fc2 with its GELU inside keeping
# fc1's output only, the norms keeping x^ in bf16 and rstd): their GPU tests, then graphed Comba-T against
# DeiT-T (speed and peak memory) with the new defaults and with the two switches off, and Comba-S at 224px.
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t tests
timeout 240 python3 -m pytest -q -p no:cacheprovider -n 8 tests/ops/test_layer_norm.py tests/ops/test_linear.py \
  tests/ops/test_mixer_fused.py tests/ops/test_mixer_joint.py tests/layers tests/models -rf > $OUT/tests.txt 2>&1
grep -E "passed|failed|FAILED|Error" $OUT/tests.txt | tail -8 | tee -a $L
M="python3 tools/benchmark.py models --mode train --cuda-graph"
t models: new defaults
timeout 150 $M --models comba_tiny deit_tiny_patch16_224 --img-size 512 1024 2048 --out /tmp/m1.json 2>&1 \
  | grep "^| [0-9]\|rror" | tee -a $L
t models: COMBA_GELU_RECOMPUTE=0 COMBA_LN_KEEP_XHAT=0
COMBA_GELU_RECOMPUTE=0 COMBA_LN_KEEP_XHAT=0 timeout 100 $M --models comba_tiny deit_tiny_patch16_224 \
  --img-size 1024 2048 --out /tmp/m2.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
t models: 224
timeout 120 $M --models comba_tiny deit_tiny_patch16_224 comba_small deit_small_patch16_224 --img-size 224 \
  --out /tmp/m3.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
t models: new defaults again
timeout 100 $M --models comba_tiny deit_tiny_patch16_224 --img-size 1024 2048 --out /tmp/m4.json 2>&1 \
  | grep "^| [0-9]\|rror" | tee -a $L
t done
