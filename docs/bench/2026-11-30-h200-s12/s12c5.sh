#!/bin/bash
# session 12 call 5 (final): GPU tests of the fused output and the chained residual adds; graphed models at 224 (final code);
# chained against module-called blocks, V blocks of 32 for the chunk-parallel kernels; Comba-T/DeiT-T at 1024 / 2048
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t tests
timeout 90 python3 -m pytest -q -n 8 -p no:cacheprovider tests/models/test_comba_vit.py tests/ops/test_bidirectional.py -k "cuda or pending or (one_launch and bfloat16)" -rf 2>&1 | tail -3 | tee -a $L
pkill -f pytest; sleep 1
t graphed 224
timeout 75 python3 tools/benchmark.py models --img-size 224 --mode train --cuda-graph --out $OUT/m224_graph.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
t kres
timeout 110 python3 .devdata/kres.py 2>&1 | grep -v Warn | tee -a $L
t sizes
timeout 90 python3 tools/benchmark.py models --models comba_tiny deit_tiny_patch16_224 --img-size 1024 2048 --mode train --cuda-graph --out $OUT/msizes_graph.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
t done
