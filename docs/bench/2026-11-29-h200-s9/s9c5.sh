#!/bin/bash
# session 9 call 5 (final): conv backward as flipped forward + weight-gradient kernel; partial sums back on torch.
# GPU tests; conv backward A/B; final graphed 224 figures; profile; larger sizes; eager 224
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t gpu tests
timeout 150 python3 -m pytest -q -n 8 -p no:cacheprovider tests/ops/test_dwconv.py tests/ops/test_layer_norm.py tests/ops/test_linear.py tests/ops/test_mixer_fused.py tests/models tests/layers tests/train/test_step.py tests/tracking/test_tracker.py tests/test_bench.py -m gpu -rf 2>&1 | grep -v "^  \|^$" | tail -8 | tee -a $L
pkill -f pytest; sleep 1
for b in 0 1; do
  t graphed 224 bwd3=$b
  COMBA_CONV_BWD3=$b timeout 40 python3 tools/benchmark.py models --models comba_tiny --img-size 224 --mode train --cuda-graph --out $OUT/m224_graph_bwd3_$b.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
done
t graphed 224
timeout 70 python3 tools/benchmark.py models --img-size 224 --mode train --cuda-graph --out $OUT/m224_graph.json 2>&1 | grep "^|\|rror" | tee -a $L
t opprof
COMBA_FUSED_NORM=1 COMBA_FUSED_LINEAR=1 COMBA_FUSED_CONV=1 timeout 60 python3 .devdata/opprof.py 2>&1 | grep -v Warn | head -30 | tee -a $L
t sizes
timeout 120 python3 tools/benchmark.py models --models comba_tiny deit_tiny_patch16_224 --img-size 512 1024 2048 --mode train --cuda-graph --out $OUT/msizes_graph.json 2>&1 | grep "^|\|rror" | tee -a $L
t eager 224
timeout 70 python3 tools/benchmark.py models --img-size 224 --mode train --out $OUT/m224_eager.json 2>&1 | grep "^|\|rror" | tee -a $L
t done
