#!/bin/bash
# session 8 call 5: fused LayerNorm / Linear only inside the package's CUDA graphs: GPU tests of everything that
# changed; graphed and eager models at 224 (the eager step should be back at the unfused figures)
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t gpu tests
timeout 170 python3 -m pytest -q -n 8 -p no:cacheprovider tests/ops/test_layer_norm.py tests/ops/test_linear.py tests/models tests/layers tests/train/test_step.py tests/test_bench.py tests/tracking/test_tracker.py -m gpu -k "not fla" -rf 2>&1 | grep -v "^  \|^$" | tail -6 | tee -a $L
pkill -f pytest; sleep 1
t graphed 224
timeout 60 python3 tools/benchmark.py models --img-size 224 --mode train --cuda-graph --out $OUT/m224_graph.json 2>&1 | grep "^|\|rror" | tee -a $L
for r in 1 2; do
  t eager 224 run $r
  timeout 40 python3 tools/benchmark.py models --img-size 224 --mode train --out $OUT/m224_eager$r.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
done
t done
