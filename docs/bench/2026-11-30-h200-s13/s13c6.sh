#!/bin/bash
# session 13 call 6 (last, ~320 s of budget): the joint projection's gradient taken piece by piece (split_linear):
# GPU tests of the linear ops and the CUDA model; graphed models at 224 (on), Comba models with it off (A/B)
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t tests
timeout 75 python3 -m pytest -q -n 8 -p no:cacheprovider tests/ops/test_linear.py tests/models/test_comba_vit.py -k "cuda or linear or split or pending" -rf 2>&1 | tail -3 | tee -a $L
pkill -f pytest; sleep 1
t graphed 224 split on
timeout 70 python3 tools/benchmark.py models --img-size 224 --mode train --cuda-graph --out $OUT/m224_graph.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
t graphed 224 split off
COMBA_SPLIT_PROJ_GRAD=0 timeout 40 python3 tools/benchmark.py models --models comba_tiny comba_small --img-size 224 --mode train --cuda-graph --out $OUT/m224_nosplit.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
t done
