#!/bin/bash
# session 28, call 4 (the last): the committed defaults (ATOMIC_SUM on, the prefetching carry): the operator table
# (graphed, one run), the one-run model table, then the errors against float64 at the long head-64 shapes.
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=.
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t ops
timeout 170 python3 tools/benchmark.py ops --providers comba comba_bidir sdpa --no-check --reps 20 --cuda-graph \
  --out $OUT/ops.json 2>&1 | grep "^|" | tee -a $L
t models: one run, every size
timeout 200 python3 tools/benchmark.py models --mode train --cuda-graph --img-size 224 512 1024 2048 \
  --out $OUT/models.json 2>&1 | grep "^| \|rror" | tee -a $L
t "errors against float64, head 64 long shapes"
timeout $(( 430 - $(date +%s) + T0 )) python3 docs/bench/2026-12-01-h200-s25/kt25.py err > $OUT/e64.json 2>/dev/null
cut -c1-800 $OUT/e64.json | tee -a $L
t done
