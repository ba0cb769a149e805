#!/bin/bash
# session 20, call 3: the depthwise conv's row walks (COMBA_CONV_ROWS=1): its tests on the GPU, a micro benchmark of
# launch options against the token-block kernels (dwbench.py), then graphed Comba-T against DeiT-T at 1024 / 2048px
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
N=""; python3 -c "import xdist" 2>/dev/null && N="-n 8"
t conv tests
timeout 150 python3 -m pytest -q $N -p no:cacheprovider tests/ops/test_dwconv.py tests/ops/test_mixer_joint.py tests/layers -rf > $OUT/t_conv.txt 2>&1
tail -3 $OUT/t_conv.txt | tee -a $L
pkill -f pytest; sleep 1
t dwbench
timeout 200 python3 .devdata/dwbench.py $OUT/dwbench.json > $OUT/dwbench.txt 2>&1; tail -2 $OUT/dwbench.txt
t graphed models rows
timeout 90 python3 tools/benchmark.py models --models comba_tiny deit_tiny_patch16_224 --img-size 1024 2048 \
  --mode train --cuda-graph --out $OUT/models_rows.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
t done
