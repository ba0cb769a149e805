#!/bin/bash
# session 14 call 5 (last): the output gate's columns before the gate's in the joint projection (16-byte aligned
# rows for the output kernels): GPU tests of the joint node and the CUDA model; graphed models 224, twice
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t tests
timeout 90 python3 -m pytest -q -n 8 -p no:cacheprovider tests/ops/test_mixer_joint.py tests/models/test_comba_vit.py -k "cuda or gpu or joint" -rf 2>&1 | tail -3 | tee -a $L
pkill -f pytest; sleep 1
t graphed 224 run 1
timeout 100 python3 tools/benchmark.py models --img-size 224 --mode train --cuda-graph --out $OUT/m224_graph.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
t graphed 224 run 2
timeout 60 python3 tools/benchmark.py models --img-size 224 --mode train --cuda-graph --out $OUT/m224_graph2.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
t done
