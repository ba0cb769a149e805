#!/bin/bash
# for session 30, call 2 (about 480 s), after next_s30c1.sh: the one-run tables under the defaults then in force
# (SETTING, e.g. SETTING="COMBA_COMPLETE_IN_GRADS=1" if call 1 cleared the fold and the default was changed, empty
# otherwise): the operator table at the four image shapes and the language-model shape (each provider's row of a
# shape in one process; the LM row last, it took more than the 170 s left in session 28's call 4), then the models.
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=.
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t "ops, image shapes ($SETTING)"
env $SETTING timeout 120 python3 tools/benchmark.py ops --providers comba comba_bidir sdpa --no-check --reps 20 \
  --cuda-graph --shapes 128,197,3,64 32,1025,3,64 8,4097,3,64 2,16385,3,64 --out $OUT/ops.json 2>&1 | grep "^|" | tee -a $L
t "models, every size ($SETTING)"
env $SETTING timeout 200 python3 tools/benchmark.py models --mode train --cuda-graph --img-size 224 512 1024 2048 \
  --out $OUT/models.json 2>&1 | grep "^| \|rror" | tee -a $L
t "ops, language-model shape ($SETTING)"
env $SETTING timeout $(( 470 - $(date +%s) + T0 )) python3 tools/benchmark.py ops --providers comba sdpa --no-check \
  --reps 20 --cuda-graph --shapes 8,2048,16,128 --out $OUT/ops_lm.json 2>&1 | grep "^|" | tee -a $L
t done
