#!/bin/bash
# prepared in session 20 for the next device session: COMBA_BRANCH_BIAS_IN_NORM (the branch-ending Linear layers'
# biases added, and their gradients summed, by the fused residual LayerNorm; interpreter-tested, untimed): the norm's
# and the model's tests on the GPU, then graphed Comba-T against DeiT-T at 1024 / 2048px and Comba-T / Comba-S at 224px,
# with it ("1") and without ("0"), one process each. Copy to .devdata/ and run with carry [".devdata", ".whl"].
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
N=""; python3 -c "import xdist" 2>/dev/null && N="-n 8"
t norm and model tests
timeout 150 python3 -m pytest -q $N -p no:cacheprovider tests/ops/test_layer_norm.py tests/models/test_comba_vit.py \
  tests/layers -rf > $OUT/t_bias.txt 2>&1
tail -3 $OUT/t_bias.txt | tee -a $L
pkill -f pytest; sleep 1
for on in 1 0 1; do
  t graphed models branch bias $on
  COMBA_BRANCH_BIAS_IN_NORM=$on timeout 80 python3 tools/benchmark.py models --models comba_tiny deit_tiny_patch16_224 \
    --img-size 1024 2048 --mode train --cuda-graph --out $OUT/models_bb$on.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
done
t graphed models 224 branch bias 1
COMBA_BRANCH_BIAS_IN_NORM=1 timeout 110 python3 tools/benchmark.py models --img-size 224 --mode train --cuda-graph \
  --out $OUT/models_224_bb1.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
t done
