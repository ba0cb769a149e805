#!/bin/bash
# session 14 call 2: the patch embedding as a GEMM (PatchConv2d) and the forward output in the state walk with the
# split gradient kernels: CUDA tests; graphed models 224 (4 models) and Comba-T/DeiT-T 1024 2048; kernel list of the
# graphed Comba-S step; kernel ms at head 64, default against COMBA_SPLIT_BWD_MIN_BK=64
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t tests
timeout 100 python3 -m pytest -q -n 8 -p no:cacheprovider tests/layers/test_fused.py tests/models/test_comba_vit.py -k "cuda or patch or gemm" -rf 2>&1 | tail -3 | tee -a $L
pkill -f pytest; sleep 1
t graphed 224
timeout 110 python3 tools/benchmark.py models --img-size 224 --mode train --cuda-graph --out $OUT/m224_graph.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
t kname comba_small
timeout 50 python3 .devdata/kname.py comba_small 2>&1 | grep -v Warn | cut -c1-140 | head -42 > $OUT/kname_comba_small.txt; head -3 $OUT/kname_comba_small.txt | tee -a $L
t sizes
timeout 80 python3 tools/benchmark.py models --models comba_tiny deit_tiny_patch16_224 --img-size 1024 2048 --mode train --cuda-graph --out $OUT/msizes_graph.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
S="128:197:3:64:64 32:1025:3:64:64 8:4097:3:64:64 2:16385:3:64:64"
t kchunk head 64 default
timeout 60 python3 .devdata/kchunk.py $S 2>&1 | grep -v Warn | tail -4 | tee -a $L
t kchunk head 64 split
COMBA_SPLIT_BWD_MIN_BK=64 timeout 60 python3 .devdata/kchunk.py $S 2>&1 | grep -v Warn | tail -4 | tee -a $L
t done
