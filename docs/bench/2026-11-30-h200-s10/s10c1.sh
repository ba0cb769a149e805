#!/bin/bash
# session 10 call 1: GPU check of session 9's post-device fixes; tail-chunk cost; in-graph kernel profiles of
# Comba-T and DeiT-T at 224px
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t gpu tests
timeout 150 python3 -m pytest -q -n 8 -p no:cacheprovider tests/ops/test_mixer_fused.py tests/ops/test_dwconv.py tests/ops/test_layer_norm.py tests/layers -rf 2>&1 | grep -v "^  \|^$" | tail -8 | tee -a $L
pkill -f pytest; sleep 1
t tail
timeout 90 python3 .devdata/ktail.py 2>&1 | grep -v Warn | tee -a $L
t graph profile
timeout 120 python3 tools/benchmark.py models --models comba_tiny deit_tiny_patch16_224 --img-size 224 --mode train --cuda-graph --profile --profile-top 60 --out $OUT/m224_graph_prof.json 2>&1 | grep -v Warn | tee -a $L
t done
