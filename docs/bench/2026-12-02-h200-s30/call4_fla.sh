#!/bin/bash
# session 30 call 4 (at most 280 s): fla 0.6.0's chunk_comba (wheels carried in .whl) beside the operator, graphed:
# (128, 197, 3, 64) with fla fully autotuned, then the language-model shape with fla's autotuners cut to their first
# config (--fla-max-configs 1; fully tuned, head size 128 did not finish inside a 10-minute call in session 4).
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  && export PYTHONPATH=/tmp/site:. || exit
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t "fla tuned, (128, 197, 3, 64)"
timeout 130 python3 tools/benchmark.py ops --providers comba fla_comba --no-check --reps 20 --cuda-graph \
  --shapes 128,197,3,64 --out $OUT/fla197.json 2>&1 | grep "^|\|rror" | tee -a $L
t "fla one config, (8, 2048, 16, 128)"
timeout $(( 270 - $(date +%s) + T0 )) python3 tools/benchmark.py ops --providers comba fla_comba --no-check --reps 20 \
  --cuda-graph --fla-max-configs 1 --shapes 8,2048,16,128 --out $OUT/fla_lm.json 2>&1 | grep "^|\|rror" | tee -a $L
t done
