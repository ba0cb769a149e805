#!/bin/bash
# session 14 call 1: GPU tests not yet run there (grouped bf16 case, split_linear, fused forward); kernel ms of
# baseline / C x C grads in sequence (patch) / split gradient kernels at head 64; graphed Comba models split proj on/off
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv | tee -a $L
t tests
timeout 170 python3 -m pytest -q -n 8 -p no:cacheprovider tests/ops/test_comba_ops.py tests/ops/test_bidirectional.py tests/ops/test_mixer_fused.py tests/ops/test_linear.py -k "gpu or cuda or bf16 or bfloat16 or one_launch or mixer_scan or grouped or split" -rf 2>&1 | tail -5 | tee -a $L
pkill -f pytest; sleep 1
S="128:196:6:32:64 128:197:3:64:64 128:196:3:32:64"
t kchunk base
timeout 60 python3 .devdata/kchunk.py $S 2>&1 | grep -v Warn | tail -3 | tee -a $L
t kchunk split bwd 64
COMBA_SPLIT_BWD_MIN_BK=64 timeout 40 python3 .devdata/kchunk.py 128:197:3:64:64 2>&1 | grep -v Warn | tail -1 | tee -a $L
t graphed comba split proj on
COMBA_SPLIT_PROJ_GRAD=1 timeout 110 python3 tools/benchmark.py models --models comba_tiny comba_small --img-size 224 --mode train --cuda-graph --out $OUT/m224_split.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
t graphed comba split proj off
timeout 60 python3 tools/benchmark.py models --models comba_tiny comba_small --img-size 224 --mode train --cuda-graph --out $OUT/m224_nosplit.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
t kchunk cc sequential patch
git apply docs/bench/2026-11-30-h200-s13/offline_cc_sequential.patch && timeout 60 python3 .devdata/kchunk.py $S 2>&1 | grep -v Warn | tail -3 | tee -a $L
git checkout -q comba_vision/ops/triton_chunk.py
t done
