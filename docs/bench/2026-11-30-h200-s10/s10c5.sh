#!/bin/bash
# session 10 call 5: partial sums in transposed layouts (row sums), conv data gradient flips in-kernel: GPU tests,
# graphed 224 both pairs, profile
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t gpu tests
timeout 150 python3 -m pytest -q -n 8 -p no:cacheprovider tests/ops/test_layer_norm.py tests/ops/test_linear.py tests/ops/test_dwconv.py tests/ops/test_mixer_fused.py tests/layers tests/train/test_step.py -k "not fla" -rf 2>&1 | grep -v "^  \|^$\|Warning\|warn" | tail -6 | tee -a $L
pkill -f pytest; sleep 1
t graphed 224 both
timeout 70 python3 tools/benchmark.py models --img-size 224 --mode train --cuda-graph --out $OUT/m224_graph.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
t graph profile
timeout 50 python3 tools/benchmark.py models --models comba_tiny --img-size 224 --mode train --cuda-graph --profile --profile-top 30 --out $OUT/m224_graph_prof.json 2>&1 | grep -v "Warn\|warn\|^{\|^|\|^wrote" | tee -a $L
t done
