#!/bin/bash
# session 5 call 2: one-launch default in one run against one direction and SDPA (incl. the model's K=32,V=64); model profile; sweep at the model shape; compiled models
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
S="128,197,3,64 32,1025,3,64 8,4097,3,64 2,16385,3,64 128,197,3,32,64 128,197,6,32,64"
t ops
timeout 100 python3 tools/benchmark.py ops --shapes $S --providers comba comba_bidir sdpa --no-check --reps 20 --out $OUT/ops.json 2>&1 | grep "^|" | tee -a $L
t models 224 profile
timeout 150 python3 tools/benchmark.py models --img-size 224 --mode train --profile --out $OUT/models224.json 2>&1 | grep -v "^{" | tee -a $L
t sweep model shape
timeout 150 python3 tools/benchmark.py sweep --shapes 256,197,3,32,64 --out $OUT/sweep32.json 2>&1 | grep "best" | tee -a $L
left=$(( 570 - ($(date +%s)-T0) ))
t compiled left=$left
[ $left -gt 60 ] && timeout $left python3 tools/benchmark.py models --models comba_tiny deit_tiny_patch16_224 --img-size 224 --mode train --compile --out $OUT/models224_compiled.json 2>&1 | grep "^|\|rror" | tail -8 | tee -a $L
t done
