#!/bin/bash
# session 28, call 2: the transition walk's group size at the long shapes (head 64, the operator table's; head 32,
# the models' long mixer shapes), then test_bidirectional.py on CUDA under the new ATOMIC_SUM default.
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=.
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
K=docs/bench/2026-12-01-h200-s25/kt25.py
for G in auto 4 8 16 32; do
  t "kernel ms head 64, COMBA_TRANSITION_GROUP=$G"
  COMBA_TRANSITION_GROUP=$G timeout 60 python3 $K time 2>/dev/null | cut -c1-900 | tee -a $L
done
for G in auto 4 8 16; do
  t "kernel ms head 32, COMBA_TRANSITION_GROUP=$G"
  COMBA_TRANSITION_GROUP=$G timeout 60 python3 $K time h32 2>/dev/null | cut -c1-900 | tee -a $L
done
t "test_bidirectional.py on CUDA"
timeout $(( 540 - $(date +%s) + T0 )) python3 -m pytest -q -p no:cacheprovider -n 8 tests/ops/test_bidirectional.py \
  -rf > $OUT/tests.txt 2>&1
grep -E "passed|failed|FAILED|Error" $OUT/tests.txt | tail -8 | tee -a $L
t done
