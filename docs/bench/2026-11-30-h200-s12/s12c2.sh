#!/bin/bash
# session 12 call 2: the state kernels with the chunk-local work fused (COMBA_FUSED_STATE): GPU tests, kernel times off/on, graphed models at 224 off/on
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t kfused
timeout 150 python3 .devdata/kfused.py 128:196:3:32:64 128:196:6:32:64 128:197:3:64:64 32:1025:3:32:64 8:4097:3:32:64 2:16385:3:32:64 8:2048:16:64:64 2>&1 | grep -v Warn | tee -a $L
t models fused
timeout 100 python3 tools/benchmark.py models --models comba_tiny comba_small --img-size 224 --mode train --cuda-graph --out $OUT/m224_fused.json 2>&1 | grep "^| [0-9a-z]\|rror" | tee -a $L
t models unfused
COMBA_FUSED_STATE=0 timeout 100 python3 tools/benchmark.py models --models comba_tiny comba_small --img-size 224 --mode train --cuda-graph --out $OUT/m224_unfused.json 2>&1 | grep "^| [0-9a-z]\|rror" | tee -a $L
t tests
timeout 200 python3 -m pytest -q -n 8 -p no:cacheprovider tests/ops/test_comba_ops.py tests/ops/test_bidirectional.py tests/ops/test_mixer_fused.py -k "gpu_matches or grouped_state or 2100 or T197 or short_last or one_launch or mixer_scan or recomputed" -rf 2>&1 | tail -4 | tee -a $L
pkill -f pytest; sleep 1
t done
