#!/bin/bash
# prepared in session 20 for the next device session, three untimed trials (interpreter-tested): BB =
# COMBA_BRANCH_BIAS_IN_NORM (the branch-ending Linear layers' biases added, and their gradients summed, by the fused
# residual LayerNorm), OS = COMBA_JOINT_ONE_SUM (the mixer node's two-stage reductions finished by one row_sums
# launch), JB = COMBA_JOINT_BIAS_SUMS (the joint projection's bias gradient from the node's kernels' column sums).
# Their tests on the GPU, then graphed Comba-T against DeiT-T at 1024 / 2048px: none, each, all (one process each),
# and the 224px models with all. Copy to .devdata/ and run with carry [".devdata", ".whl"]. Adopt a trial only if
# its GPU tests pass and it is faster.
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
N=""; python3 -c "import xdist" 2>/dev/null && N="-n 8"
t tests
timeout 170 python3 -m pytest -q $N -p no:cacheprovider tests/ops/test_layer_norm.py tests/ops/test_reductions.py \
  tests/ops/test_mixer_joint.py tests/models/test_comba_vit.py tests/layers -rf > $OUT/t_trials.txt 2>&1
tail -3 $OUT/t_trials.txt | tee -a $L
pkill -f pytest; sleep 1
for v in "0 0 0" "1 1 1" "1 0 0"; do
  set -- $v
  t graphed models BB $1 OS $2 JB $3
  COMBA_BRANCH_BIAS_IN_NORM=$1 COMBA_JOINT_ONE_SUM=$2 COMBA_JOINT_BIAS_SUMS=$3 timeout 85 python3 tools/benchmark.py \
    models --models comba_tiny deit_tiny_patch16_224 --img-size 1024 2048 --mode train --cuda-graph \
    --out $OUT/models_bb$1_os$2_jb$3.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
done
t done
