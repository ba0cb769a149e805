#!/bin/bash
# session 28, call 3: _state_carry loading the next group's summary before each step's product (always now), and
# COMBA_WALK_PREFETCH (the same in _affine_scan), at the transition walk's default groups and at 8 chunks a group;
# then the walk's tests on CUDA.
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=.
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
K=docs/bench/2026-12-01-h200-s25/kt25.py
for h in "" h32; do
  for G in auto 8; do
    for P in 0 1; do
      t "kernel ms $h COMBA_TRANSITION_GROUP=$G COMBA_WALK_PREFETCH=$P"
      COMBA_TRANSITION_GROUP=$G COMBA_WALK_PREFETCH=$P timeout 60 python3 $K time $h 2>/dev/null | cut -c1-900 | tee -a $L
    done
  done
done
t "walk tests on CUDA"
timeout $(( 500 - $(date +%s) + T0 )) python3 -m pytest -q -p no:cacheprovider -n 8 tests/ops/test_comba_ops.py \
  -k "walk_prefetch or carry or transition_walk or grouped or half_maps" -rf > $OUT/tests.txt 2>&1
grep -E "passed|failed|FAILED|Error" $OUT/tests.txt | tail -8 | tee -a $L
t done
