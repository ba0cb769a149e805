#!/bin/bash
# session 20, call 5: FusedMlp (fc1 + exact GELU with the GELU derivative and fc1's bias gradient in one Triton pass)
# on the GPU: its tests, graphed Comba-T against DeiT-T at 1024 / 2048px; the unmarked transition-walk tests with the
# fold's V <= 16 rule; the operator table (graphed) and the models at 224 (all four) and 512px
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
N=""; python3 -c "import xdist" 2>/dev/null && N="-n 12"
t linear and layer tests
timeout 90 python3 -m pytest -q $N -p no:cacheprovider tests/ops/test_linear.py tests/layers -rf > $OUT/t_lin.txt 2>&1
tail -3 $OUT/t_lin.txt | tee -a $L
pkill -f pytest; sleep 1
t graphed models 1024 2048
timeout 80 python3 tools/benchmark.py models --models comba_tiny deit_tiny_patch16_224 --img-size 1024 2048 \
  --mode train --cuda-graph --out $OUT/models_mlp.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
t transition tests unmarked
timeout 150 python3 -m pytest -q $N -p no:cacheprovider tests/ops/test_comba_ops.py -m "not gpu" -k "transition_walk" -rf > $OUT/t_tr.txt 2>&1
tail -3 $OUT/t_tr.txt | tee -a $L
pkill -f pytest; sleep 1
t ops graphed
timeout 90 python3 tools/benchmark.py ops --shapes 128,197,3,64 128,197,6,64 32,1025,3,64 8,4097,3,64 2,16385,3,64 \
  --providers comba comba_bidir sdpa --no-check --reps 20 --cuda-graph --out $OUT/ops_graph.json 2>&1 | grep "^|\|rror" | tee -a $L
t graphed models 224 512
timeout 110 python3 tools/benchmark.py models --img-size 224 --mode train --cuda-graph --out $OUT/models_224.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
timeout 50 python3 tools/benchmark.py models --models comba_tiny deit_tiny_patch16_224 --img-size 512 \
  --mode train --cuda-graph --out $OUT/models_512.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
t done
