#!/bin/bash
# session 8 call 3: Triton bias gradient for the blocks' Linear layers, LayerNorm backward with 2 row blocks a
# program: GPU tests, kernels by aten op, models at 224 graphed (with and without the Linear change) and eager,
# larger sizes eager
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t gpu tests
timeout 220 python3 -m pytest -q -n 8 -p no:cacheprovider tests/ops tests/models tests/layers tests/train/test_step.py tests/test_bench.py -m gpu -k "not fla" -rf 2>&1 | grep -v "^  \|^$" | tail -8 | tee -a $L
pkill -f pytest; sleep 1
t opprof
timeout 60 python3 .devdata/opprof.py comba_tiny 2>&1 | grep -v Warn | head -40 | tee -a $L
t models graphed
timeout 100 python3 tools/benchmark.py models --img-size 224 --mode train --cuda-graph --out $OUT/m224_graph.json 2>&1 | grep "^|\|rror" | tee -a $L
t comba graphed without the Linear change
COMBA_FUSED_LINEAR=0 timeout 60 python3 tools/benchmark.py models --models comba_tiny comba_small --img-size 224 --mode train --cuda-graph --out $OUT/m224_graph_nolin.json 2>&1 | grep "^|\|rror" | tee -a $L
t models eager
timeout 80 python3 tools/benchmark.py models --img-size 224 --mode train --out $OUT/m224.json 2>&1 | grep "^|\|rror" | tee -a $L
t large eager
timeout 90 python3 tools/benchmark.py models --models comba_tiny deit_tiny_patch16_224 --img-size 512 1024 2048 --mode train --out $OUT/m_large.json 2>&1 | grep "^|\|rror" | tee -a $L
t large graphed 512
timeout 60 python3 tools/benchmark.py models --models comba_tiny deit_tiny_patch16_224 --img-size 512 --mode train --cuda-graph --out $OUT/m512_graph.json 2>&1 | grep "^|\|rror" | tee -a $L
t done
