#!/bin/bash
# session 9 call 8: the recompute mode keeps the two scans' sum (not both) for the output side: GPU tests of the
# output kernel and the mixer; peak memory at 512-2048 px in the recompute mode against DeiT-T (one run)
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t sizes recompute
COMBA_RECOMPUTE_BUFFERS=1 timeout 75 python3 tools/benchmark.py models --models comba_tiny deit_tiny_patch16_224 --comba-kwargs '{"mixer_recompute": true}' --img-size 512 1024 2048 --mode train --cuda-graph --out $OUT/msizes_graph_recompute.json 2>&1 | grep "^|\|rror" | tee -a $L
t gpu tests
timeout 60 python3 -m pytest -q -n 4 -p no:cacheprovider tests/ops/test_mixer_fused.py tests/layers -rf 2>&1 | grep -v "^  \|^$" | tail -4 | tee -a $L
t done
