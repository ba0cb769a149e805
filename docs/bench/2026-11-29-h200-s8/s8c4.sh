#!/bin/bash
# session 8 call 4: LayerNorm partials in one reduction (GPU tests of the fused pieces and the models); eager A/B of
# the fused LayerNorm and Linear (host cost), graphed and eager figures at every size for the bars
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t gpu tests
timeout 150 python3 -m pytest -q -n 8 -p no:cacheprovider tests/ops/test_layer_norm.py tests/ops/test_linear.py tests/models tests/layers tests/train/test_step.py -m gpu -rf 2>&1 | grep -v "^  \|^$" | tail -6 | tee -a $L
pkill -f pytest; sleep 1
M="--models comba_tiny deit_tiny_patch16_224 --mode train"
t graphed 224
timeout 60 python3 tools/benchmark.py models --img-size 224 --mode train --cuda-graph --out $OUT/m224_graph.json 2>&1 | grep "^|\|rror" | tee -a $L
t graphed large
timeout 90 python3 tools/benchmark.py models $M --img-size 512 1024 2048 --cuda-graph --out $OUT/m_large_graph.json 2>&1 | grep "^|\|rror" | tee -a $L
for r in 1 2; do
  t eager 224 512 fused
  timeout 50 python3 tools/benchmark.py models $M --img-size 224 512 --out $OUT/m_eager_fused$r.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
  t eager 224 512 unfused
  COMBA_FUSED_NORM=0 COMBA_FUSED_LINEAR=0 timeout 50 python3 tools/benchmark.py models $M --img-size 224 512 --out $OUT/m_eager_plain$r.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
done
t eager large
timeout 70 python3 tools/benchmark.py models $M --img-size 1024 2048 --out $OUT/m_large_eager.json 2>&1 | grep "^|\|rror" | tee -a $L
t done
