#!/bin/bash
# session 20, call 2: the GPU suite with COMBA_TRANSITION_FOLD=1 as the default (its backward fold kept off at
# V <= 16 on CUDA), the unmarked transition tests on the GPU, then a profile of the graphed Comba-T step at 1024px
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
N=""; python3 -c "import xdist" 2>/dev/null && N="-n 12"
t gpu tests
timeout 280 python3 -m pytest -q $N -p no:cacheprovider tests/ops/test_comba_ops.py -m gpu -rf > $OUT/t_gpu.txt 2>&1
tail -4 $OUT/t_gpu.txt | tee -a $L
t transition tests unmarked
timeout 120 python3 -m pytest -q $N -p no:cacheprovider tests/ops/test_comba_ops.py -m "not gpu" -k "transition or walk_mode or unwritten" -rf > $OUT/t_tr.txt 2>&1
tail -3 $OUT/t_tr.txt | tee -a $L
pkill -f pytest; sleep 1
t profile models 1024
timeout 120 python3 tools/benchmark.py models --models comba_tiny deit_tiny_patch16_224 --img-size 1024 \
  --mode train --cuda-graph --profile --profile-top 45 --out $OUT/models_prof1024.json > $OUT/prof.txt 2>&1
grep "^| [0-9]\|rror" $OUT/prof.txt | tee -a $L
t done
