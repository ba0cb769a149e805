#!/bin/bash
# session 7 call 4: GPU suite on the final code (precomputed products at head size 32, no zero gradients,
# dense residual stream); models eager and graphed; large sizes; ops table
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t gpu tests
timeout 250 python3 -m pytest -q -n 8 -p no:cacheprovider tests/ops tests/layers tests/test_bench.py -m gpu -k "not fla" -rf tests/models 2>&1 | grep -v "^  \|^$" | tail -8 | tee -a $L
pkill -f pytest; sleep 1
t models 224 eager
timeout 80 python3 tools/benchmark.py models --img-size 224 --mode train --out $OUT/m224.json 2>&1 | grep "^|\|rror" | tee -a $L
t models 224 graphed
timeout 90 python3 tools/benchmark.py models --img-size 224 --mode train --cuda-graph --out $OUT/m224_graph.json 2>&1 | grep "^|\|rror" | tee -a $L
t large
timeout 70 python3 tools/benchmark.py models --models comba_tiny deit_tiny_patch16_224 --img-size 512 1024 2048 --mode train --out $OUT/m_large.json 2>&1 | grep "^|\|rror" | tee -a $L
left=$(( 500 - ($(date +%s)-T0) ))
t ops left=$left
[ $left -gt 40 ] && timeout $left python3 tools/benchmark.py ops --shapes 128,197,3,32,64 128,197,6,32,64 128,197,3,64 32,1025,3,64 8,4097,3,64 2,16385,3,64 --providers comba comba_bidir sdpa --no-check --reps 20 --out $OUT/ops.json 2>&1 | grep "^|\|rror" | tee -a $L
left=$(( 540 - ($(date +%s)-T0) ))
t head 64 pre left=$left
[ $left -gt 25 ] && KEXP_SHAPE=128,197,3,64 timeout $((left/2)) python3 .devdata/kexp.py 2>&1 | grep "^{" | tee -a $L
left=$(( 550 - ($(date +%s)-T0) ))
[ $left -gt 12 ] && KEXP_SHAPE=128,197,3,64 COMBA_PRE_BKS=32,64 timeout $left python3 .devdata/kexp.py 2>&1 | grep "^{" | tee -a $L
t done
