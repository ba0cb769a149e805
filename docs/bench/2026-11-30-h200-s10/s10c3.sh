#!/bin/bash
# session 10 call 3: prep + both scans as one autograd node (mixer_scan): GPU tests (with the tail tile), graphed
# Comba-T at 224 with COMBA_MIXER_SCAN=0/1, DeiT-T in the same run
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t gpu tests
timeout 220 python3 -m pytest -q -n 8 -p no:cacheprovider tests/ops/test_mixer_fused.py tests/layers tests/ops/test_layer_norm.py tests/ops/test_bidirectional.py tests/ops/test_comba_ops.py -k "not fla and (mixer or layer_norm or Block or block or one_launch or short_last or T197 or bf16 or scan or fused)" -rf 2>&1 | grep -v "^  \|^$\|Warning\|warn" | tail -8 | tee -a $L
pkill -f pytest; sleep 1
for ms in 0 1; do
  t graphed 224 mixer_scan=$ms
  COMBA_MIXER_SCAN=$ms timeout 45 python3 tools/benchmark.py models --models comba_tiny --img-size 224 --mode train --cuda-graph --out $OUT/m224_graph_scan$ms.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
done
t graphed 224 both
timeout 70 python3 tools/benchmark.py models --img-size 224 --mode train --cuda-graph --out $OUT/m224_graph.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
t done
