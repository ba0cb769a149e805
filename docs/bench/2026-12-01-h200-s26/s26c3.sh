#!/bin/bash
# session 26, call 3: the new defaults (head size 64: the one-kernel gradient with the precomputed products and the
# short last chunk on its own tile; bf16 walk maps; the direction sums as elementwise adds). Each kernel's time at the
# four head-64 image shapes under them and with transition-walk groups of 8 and 32 chunks (16 by default at 16385),
# the operator table, the one-run model table, then the tests that run on CUDA when it is there (both directions,
# the walks, the tails, half maps).
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=.
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
K=docs/bench/2026-12-01-h200-s25/kt25.py
t kernel times
for c in "def|" "g8|COMBA_TRANSITION_GROUP=8" "g32|COMBA_TRANSITION_GROUP=32"; do n=${c%%|*}; e=${c#*|}
  env $e timeout 60 python3 $K time h64all > $OUT/t_$n.json 2>/dev/null; echo "$n $(cat $OUT/t_$n.json)" | tee -a $L; done
t ops
timeout 150 python3 tools/benchmark.py ops --providers comba comba_bidir sdpa --no-check --reps 20 --cuda-graph \
  --out $OUT/ops.json 2>&1 | grep "^|" | tee -a $L
t "every CUDA kernel (prof_all.py)"
timeout 60 python3 docs/bench/2026-12-01-h200-s25/prof_all.py 2>/dev/null | tee -a $L
t models: one run, every size
timeout 200 python3 tools/benchmark.py models --mode train --cuda-graph --img-size 224 512 1024 2048 \
  --out $OUT/models.json 2>&1 | grep "^| \|rror" | tee -a $L
t tests on CUDA
timeout 170 python3 -m pytest -q -p no:cacheprovider -n 8 tests/ops/test_bidirectional.py tests/ops/test_comba_ops.py \
  -k "bidirectional or one_launch or transition_walk or half_maps or short_last_chunk or split_tail" -rf > $OUT/tests.txt 2>&1
grep -E "passed|failed|FAILED|Error" $OUT/tests.txt | tail -8 | tee -a $L
rm -f $OUT/t_*.json
t done
