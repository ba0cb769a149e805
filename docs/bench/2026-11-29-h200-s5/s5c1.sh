#!/bin/bash
# session 5 call 1: GPU check of the session-4 kernel refactors and the one-launch bidirectional path; timings; model profile
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; python3 -c "import torch,triton,timm;print(torch.__version__,triton.__version__,timm.__version__)") 2>&1 | tee $L
t pytest tests/ops -m gpu
timeout 220 python3 -m pytest -q -n 8 -p no:cacheprovider tests/ops -m gpu -rf -k "not fla" 2>&1 | tail -8 | tee -a $L
pkill -f pytest; sleep 1
S="128,197,3,64 32,1025,3,64 8,4097,3,64 2,16385,3,64"
t bench default
timeout 90 python3 tools/benchmark.py ops --shapes $S --providers comba comba_bidir sdpa --no-check --reps 20 --out $OUT/ops_default.json 2>&1 | grep "^|" | tee -a $L
t bench one launch
COMBA_BIDIR_ONE_LAUNCH=1 timeout 60 python3 tools/benchmark.py ops --shapes $S --providers comba_bidir --no-check --reps 20 --out $OUT/ops_onelaunch.json 2>&1 | grep "^|" | tee -a $L
t models 224 profile
timeout 120 python3 tools/benchmark.py models --models comba_tiny deit_tiny_patch16_224 --img-size 224 --mode train --profile --out $OUT/models224_prof.json 2>&1 | grep -v "^{" | tee -a $L
left=$(( 560 - ($(date +%s)-T0) ))
t models 512 left=$left
[ $left -gt 60 ] && timeout $left python3 tools/benchmark.py models --models comba_tiny deit_tiny_patch16_224 --img-size 512 1024 --mode train --out $OUT/models512.json 2>&1 | grep "^|" | tee -a $L
left=$(( 575 - ($(date +%s)-T0) ))
t models 512 recompute left=$left
[ $left -gt 30 ] && COMBA_RECOMPUTE_BUFFERS=1 timeout $left python3 tools/benchmark.py models --models comba_tiny --img-size 512 1024 --mode train --comba-kwargs '{"mixer_recompute": true}' --out $OUT/models512_rc.json 2>&1 | grep "^|" | tee -a $L
t done
