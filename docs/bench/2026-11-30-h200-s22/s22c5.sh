#!/bin/bash
# session 22, call 5: COMBA_CONV_IN_PREP's modes (0: c kept; 1: the conv inside the prep, c not kept; 2: also q~ ..
# beta formed again in the backward, call 4's form, 6% slower): joint-node GPU tests, graphed Comba-T against DeiT-T
# per mode, then every bar in one run with the default (1).
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t tests
timeout 150 python3 -m pytest -q -p no:cacheprovider -n 8 tests/ops/test_mixer_joint.py tests/models/test_comba_vit.py \
  -rf > $OUT/tests.txt 2>&1
grep -E "passed|failed|FAILED|Error" $OUT/tests.txt | tail -8 | tee -a $L
M="python3 tools/benchmark.py models --mode train --cuda-graph"
for mode in 0 1 2 1 0; do
  t models 1024 2048: COMBA_CONV_IN_PREP=$mode
  COMBA_CONV_IN_PREP=$mode timeout 100 $M --models comba_tiny deit_tiny_patch16_224 --img-size 1024 2048 \
    --out /tmp/m.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
done
t models: one run, every size
timeout 200 $M --img-size 224 512 1024 2048 --out $OUT/models.json 2>&1 | grep "^| \|rror" | tee -a $L
t done
