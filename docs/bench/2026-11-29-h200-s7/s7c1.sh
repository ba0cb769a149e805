#!/bin/bash
# session 7 call 1: graphed training step (test + models), eager profile (top 45), kernel resources and ncu of the
# gradient and prepare kernels, ops under CUDA graphs, recompute memory at 512/1024
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; python3 -c "import torch,triton,timm;print(torch.__version__,triton.__version__,timm.__version__)") 2>&1 | tee $L
t graph test
timeout 100 python3 -m pytest -q -p no:cacheprovider tests/test_bench.py -m gpu -rf 2>&1 | tail -3 | tee -a $L
t kernel info
timeout 60 python3 .devdata/kinfo.py 2>&1 | tail -12 | tee -a $L
t models 224 eager profile
timeout 100 python3 tools/benchmark.py models --models comba_tiny deit_tiny_patch16_224 --img-size 224 --mode train --profile --profile-top 45 --out $OUT/m224_prof.json 2>&1 | grep -v "^{" | tee -a $L
t models graphed
timeout 130 python3 tools/benchmark.py models --img-size 224 --mode train --cuda-graph --out $OUT/m224_graph.json 2>&1 | grep "^|\|rror" | tee -a $L
t ops graphed
timeout 80 python3 tools/benchmark.py ops --shapes 128,197,3,32,64 128,197,6,32,64 32,1025,3,64 8,4097,3,64 --providers comba comba_bidir sdpa --no-check --reps 20 --cuda-graph --out $OUT/ops_graph.json 2>&1 | grep "^|\|rror" | tee -a $L
left=$(( 470 - ($(date +%s)-T0) ))
t ncu left=$left
[ $left -gt 40 ] && timeout $left ncu --clock-control none -k regex:"_bwd_grads|_fwd_prepare_blocked" --launch-count 2 --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats --section MemoryWorkloadAnalysis python3 .devdata/kone.py > $OUT/ncu.txt 2>&1; grep -v "^    ---\|^$" $OUT/ncu.txt | tail -150 | tee -a $L
left=$(( 560 - ($(date +%s)-T0) ))
t recompute left=$left
[ $left -gt 30 ] && COMBA_RECOMPUTE_BUFFERS=1 timeout $left python3 tools/benchmark.py models --models comba_tiny --img-size 512 1024 --mode train --comba-kwargs '{"mixer_recompute": true}' --out $OUT/rc.json 2>&1 | grep "^|" | tee -a $L
t done
