#!/bin/bash
# session 10 call 7 (final): GPU tests of the changed modules and the graphed steps; graphed figures with the
# trainer's fused AdamW at 224 (both pairs) and 512-2048 (Comba-T / DeiT-T)
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t gpu tests
timeout 130 python3 -m pytest -q -n 8 -p no:cacheprovider tests/ops/test_layer_norm.py tests/ops/test_linear.py tests/ops/test_dwconv.py tests/ops/test_mixer_fused.py tests/layers tests/train/test_step.py tests/test_bench.py -k "not fla" -rf 2>&1 | grep -v "^  \|^$" | grep "passed\|failed\|FAIL\|Error" | tail -6 | tee -a $L
pkill -f pytest; sleep 1
t graphed 224 both fused adamw
timeout 80 python3 tools/benchmark.py models --img-size 224 --mode train --cuda-graph --out $OUT/m224_graph.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
t sizes
timeout 130 python3 tools/benchmark.py models --models comba_tiny deit_tiny_patch16_224 --img-size 512 1024 2048 --mode train --cuda-graph --out $OUT/msizes_graph.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
t done
