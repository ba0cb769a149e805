#!/bin/bash
# session 9 call 1: GPU tests (the shared capture routine of session 8, the direction sums folded into the
# gradient kernels, the Triton depthwise conv); graphed 224 models with and without the conv kernel; op profile
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a $L
t gpu tests
timeout 260 python3 -m pytest -q -n 8 -p no:cacheprovider tests/ops tests/models tests/layers tests/train/test_step.py tests/test_bench.py tests/tracking/test_tracker.py -m gpu -k "not fla" -rf 2>&1 | grep -v "^  \|^$" | tail -12 | tee -a $L
pkill -f pytest; sleep 1
t graphed 224
timeout 70 python3 tools/benchmark.py models --img-size 224 --mode train --cuda-graph --out $OUT/m224_graph.json 2>&1 | grep "^|\|rror" | tee -a $L
t graphed 224 conv off
COMBA_FUSED_CONV=0 timeout 40 python3 tools/benchmark.py models --models comba_tiny --img-size 224 --mode train --cuda-graph --out $OUT/m224_graph_noconv.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
for r in 1 2; do
for c in graph 1; do
  t eager 224 conv=$c run $r
  COMBA_FUSED_CONV=$c timeout 40 python3 tools/benchmark.py models --models comba_tiny --img-size 224 --mode train --out $OUT/m224_eager_conv${c}_$r.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
done; done
t opprof
COMBA_FUSED_NORM=1 COMBA_FUSED_LINEAR=1 COMBA_FUSED_CONV=1 timeout 90 python3 .devdata/opprof.py 2>&1 | tail -48 | tee -a $L
t ops 197
timeout 80 python3 tools/benchmark.py ops --shapes 128,197,3,32,64 128,197,3,64 --providers comba comba_bidir sdpa --out $OUT/ops197.json 2>&1 | grep "^|\|rror" | tee -a $L
t done
