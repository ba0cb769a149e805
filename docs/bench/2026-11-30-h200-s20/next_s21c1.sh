#!/bin/bash
# prepared in session 20 for the next device session, two untimed trials (interpreter-tested): COMBA_BRANCH_BIAS_IN_NORM
# (the branch-ending Linear layers' biases added, and their gradients summed, by the fused residual LayerNorm) and
# COMBA_JOINT_ONE_SUM (the mixer node's three two-stage reductions finished by one row_sums launch). Their tests on
# the GPU, then graphed Comba-T against DeiT-T at 1024 / 2048px: neither, each, both (one process each), and the 224px
# models with both. Copy to .devdata/ and run with carry [".devdata", ".whl"]. Adopt a trial only if its GPU tests
# pass and it is faster.
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
N=""; python3 -c "import xdist" 2>/dev/null && N="-n 8"
t tests
timeout 170 python3 -m pytest -q $N -p no:cacheprovider tests/ops/test_layer_norm.py tests/ops/test_reductions.py \
  tests/ops/test_mixer_joint.py tests/models/test_comba_vit.py tests/layers -rf > $OUT/t_trials.txt 2>&1
tail -3 $OUT/t_trials.txt | tee -a $L
pkill -f pytest; sleep 1
for bb_os in "0 0" "1 0" "0 1" "1 1" "0 0"; do
  set -- $bb_os
  t graphed models branch bias $1 one sum $2
  COMBA_BRANCH_BIAS_IN_NORM=$1 COMBA_JOINT_ONE_SUM=$2 timeout 80 python3 tools/benchmark.py models \
    --models comba_tiny deit_tiny_patch16_224 --img-size 1024 2048 --mode train --cuda-graph \
    --out $OUT/models_bb$1_os$2.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
done
t graphed models 224 with both
COMBA_BRANCH_BIAS_IN_NORM=1 COMBA_JOINT_ONE_SUM=1 timeout 110 python3 tools/benchmark.py models --img-size 224 \
  --mode train --cuda-graph --out $OUT/models_224_both.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
t done
