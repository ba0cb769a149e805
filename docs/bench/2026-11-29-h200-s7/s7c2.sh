#!/bin/bash
# session 7 call 2: graph test, kernels by aten op (Comba-T step), kernel resources + ncu of _bwd_grads,
# models 224 eager and graphed after the no-zero-gradient change, ops under CUDA graphs
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t graph test
timeout 100 python3 -m pytest -q -p no:cacheprovider tests/test_bench.py -m gpu -rf 2>&1 | grep -v "^  \|^$" | tail -25 | tee -a $L
t aten ops
timeout 80 python3 .devdata/opprof.py comba_tiny 2>&1 | grep -v Warn | tee -a $L
t kinfo
timeout 60 python3 .devdata/kinfo.py 2>&1 | tail -8 | tee -a $L
t ncu
timeout 100 ncu --clock-control none -k regex:"_bwd_grads" --launch-count 1 --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats --section ComputeWorkloadAnalysis python3 .devdata/kone.py > $OUT/ncu.txt 2>&1; grep -v "^    ---\|^$" $OUT/ncu.txt | tail -90 | tee -a $L
t models eager
timeout 90 python3 tools/benchmark.py models --models comba_tiny deit_tiny_patch16_224 --img-size 224 --mode train --out $OUT/m224.json 2>&1 | grep "^|\|rror" | tee -a $L
t models graphed
timeout 90 python3 tools/benchmark.py models --models comba_tiny deit_tiny_patch16_224 --img-size 224 512 --mode train --cuda-graph --out $OUT/m_graph.json 2>&1 | grep "^|\|rror" | tee -a $L
left=$(( 420 - ($(date +%s)-T0) ))
t ops graphed left=$left
[ $left -gt 30 ] && timeout $left python3 tools/benchmark.py ops --shapes 128,197,3,32,64 128,197,3,64 32,1025,3,64 8,4097,3,64 2,16385,3,64 --providers comba comba_bidir sdpa --no-check --reps 20 --cuda-graph --out $OUT/ops_graph.json 2>&1 | grep "^|\|rror" | tee -a $L
t done
