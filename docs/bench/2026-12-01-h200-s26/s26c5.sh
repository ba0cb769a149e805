#!/bin/bash
# session 26, call 5 (the last ~330 s of the budget): COMBA_ATOMIC_SUM=1 (both directions' gradients added atomically
# by the one-kernel _bwd_grads into one buffer per input), written after call 4. Errors against float64 (head 64 at
# the table's three shorter shapes, head 32 at the models' long ones) and its test on CUDA, in parallel while
# compiling; then every CUDA kernel of one eager call with and without it (prof_all.py), then the graphed operator at
# the two long shapes with it.
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=.
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
K=docs/bench/2026-12-01-h200-s25/kt25.py
t errors and test
COMBA_ATOMIC_SUM=1 timeout 100 python3 $K err h64all > $OUT/e64.json 2>/dev/null &
COMBA_ATOMIC_SUM=1 timeout 100 python3 $K err h32 > $OUT/e32.json 2>/dev/null &
timeout 100 python3 -m pytest -q -p no:cacheprovider tests/ops/test_comba_ops.py -k atomic_direction_sum -rf \
  2>&1 | grep -E "passed|failed|FAILED|Error" | tail -5 | tee -a $L &
wait
for f in e64 e32; do echo "$f $(cat $OUT/$f.json)" | tee -a $L; done
for a in 1 0; do t "prof_all ATOMIC_SUM=$a"; COMBA_ATOMIC_SUM=$a timeout 50 python3 docs/bench/2026-12-01-h200-s25/prof_all.py \
  2>/dev/null | tee -a $L; done
t ops
COMBA_ATOMIC_SUM=1 timeout 60 python3 tools/benchmark.py ops --providers comba_bidir sdpa --no-check --reps 20 \
  --cuda-graph --shapes 8,4097,3,64 2,16385,3,64 --out $OUT/ops.json 2>&1 | grep "^|" | tee -a $L
rm -f $OUT/e*.json
t done
