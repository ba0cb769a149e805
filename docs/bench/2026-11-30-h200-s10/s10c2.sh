#!/bin/bash
# session 10 call 2: the short last chunk on its own tile (COMBA_TAIL_TILE): GPU operator tests, kernel times
# with the tile on/off, graphed Comba-T at 224
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t gpu tests
timeout 200 python3 -m pytest -q -n 8 -p no:cacheprovider tests/ops/test_comba_ops.py tests/ops/test_bidirectional.py tests/ops/test_layer_norm.py -k "not fla" -rf 2>&1 | grep -v "^  \|^$" | tail -8 | tee -a $L
pkill -f pytest; sleep 1
for tt in 1 0; do
  t tail tile $tt
  COMBA_TAIL_TILE=$tt timeout 60 python3 .devdata/ktail.py 196 192 2>&1 | grep "^T=" | tee -a $L
done
t graphed 224
timeout 60 python3 tools/benchmark.py models --models comba_tiny deit_tiny_patch16_224 --img-size 224 --mode train --cuda-graph --out $OUT/m224_graph.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
t done
