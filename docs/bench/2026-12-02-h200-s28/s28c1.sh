#!/bin/bash
# session 28, call 1: COMBA_ATOMIC_SUM with the zero fills as multi-tensor launches and the output summed atomically
# too, against the committed defaults: every CUDA kernel of one call (prof_all.py), the graphed operator at the
# shortest and longest shapes, then its tests and the tail-tile tests on CUDA.
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=.
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
P=docs/bench/2026-12-01-h200-s25/prof_all.py
for a in 0 1; do
  t "prof_all ATOMIC_SUM=$a"
  COMBA_ATOMIC_SUM=$a timeout 60 python3 $P 128,197,3,64 32,1025,3,64 8,4097,3,64 2,16385,3,64 2>/dev/null | tee -a $L
done
for a in 0 1 0 1; do
  t "ops ATOMIC_SUM=$a"
  COMBA_ATOMIC_SUM=$a timeout 100 python3 tools/benchmark.py ops --providers comba_bidir sdpa --no-check --reps 20 \
    --cuda-graph --shapes 128,197,3,64 8,4097,3,64 2,16385,3,64 --out $OUT/ops_a$a.json 2>&1 | grep "^|" | tee -a $L
done
t "tests on CUDA"
timeout $(( 540 - $(date +%s) + T0 )) python3 -m pytest -q -p no:cacheprovider -n 8 tests/ops/test_comba_ops.py \
  -k "atomic or short_last_chunk or tail_tile or output_launch_at_1025 or carry_precision" -rf > $OUT/tests.txt 2>&1
grep -E "passed|failed|FAILED|Error" $OUT/tests.txt | tail -8 | tee -a $L
t done
