#!/bin/bash
# session 13 call 4: bf16 products in the prepare, state and local-dU kernels (default on): GPU tests of the operator
# (bf16 cases, both directions, fused mixer), kernel ms at head sizes 32 and 64 on/off, graphed models 224 / 1024 / 2048
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t tests
timeout 190 python3 -m pytest -q -n 8 -p no:cacheprovider tests/ops/test_comba_ops.py tests/ops/test_bidirectional.py tests/ops/test_mixer_fused.py -k "bf16 or bfloat16 or one_launch or mixer_scan or short_last or grouped" -rf 2>&1 | tail -5 | tee -a $L
pkill -f pytest; sleep 1
for v in 0 1; do
  t kchunk bf16 dots $v
  COMBA_BF16_DOTS=$v timeout 60 python3 .devdata/kchunk.py 128:196:3:32:64 128:196:6:32:64 8:4097:3:32:64 128:197:3:64:64 2>&1 | grep -v Warn | tail -4 | tee -a $L
done
t graphed 224
timeout 80 python3 tools/benchmark.py models --img-size 224 --mode train --cuda-graph --out $OUT/m224_graph.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
t sizes
timeout 90 python3 tools/benchmark.py models --models comba_tiny deit_tiny_patch16_224 --img-size 1024 2048 --mode train --cuda-graph --out $OUT/msizes_graph.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
t done
