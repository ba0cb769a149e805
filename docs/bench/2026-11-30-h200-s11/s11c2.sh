#!/bin/bash
# session 11 call 2: the state kernels' grouped walk: GPU tests, per-kernel times by group size, graphed Comba-T at 1024 / 2048
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t tests
timeout 200 python3 -m pytest -q -n 8 -p no:cacheprovider tests/ops/test_comba_ops.py tests/ops/test_bidirectional.py -k "grouped or group_choice or 2100 or T197 or short_last or one_launch" -rf 2>&1 | tail -4 | tee -a $L
pkill -f pytest; sleep 1
t kgroup
timeout 150 python3 .devdata/kgroup.py 2:16384 8:4096 2:16385 2>&1 | grep -v Warn | tee -a $L
t sizes
timeout 150 python3 tools/benchmark.py models --models comba_tiny deit_tiny_patch16_224 --img-size 1024 2048 --mode train --cuda-graph --out $OUT/msizes_graph.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
t done
