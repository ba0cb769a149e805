#!/bin/bash
# for session 29, call 1 (about 420 s): COMBA_ALIGN_BOTH (session 28, interpreter-tested only): its tests on CUDA
# first (the ordered read-modify-write of _bwd_grads_both must be checked on a GPU before any timing is trusted), then
# errors against float64 at the long head-64 shapes, each kernel's time, every CUDA kernel of a call, and the graphed
# operator at the long shapes, off and on.
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=.
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
K=docs/bench/2026-12-01-h200-s25/kt25.py
P=docs/bench/2026-12-01-h200-s25/prof_all.py
t "aligned tests on CUDA"
timeout 150 python3 -m pytest -q -p no:cacheprovider -n 8 tests/ops/test_bidirectional.py -k "aligned or shared_do" \
  -rf > $OUT/tests.txt 2>&1
grep -E "passed|failed|FAILED|Error" $OUT/tests.txt | tail -8 | tee -a $L
for a in 0 1; do
  t "COMBA_ALIGN_BOTH=$a: errors, kernel ms, every CUDA kernel"
  COMBA_ALIGN_BOTH=$a timeout 70 python3 $K err 2>/dev/null | cut -c1-700 | tee -a $L
  COMBA_ALIGN_BOTH=$a timeout 50 python3 $K time 2>/dev/null | cut -c1-900 | tee -a $L
  COMBA_ALIGN_BOTH=$a timeout 40 python3 $P 8,4097,3,64 2,16385,3,64 2>/dev/null | tee -a $L
done
for a in 0 1; do
  t "ops COMBA_ALIGN_BOTH=$a"
  COMBA_ALIGN_BOTH=$a timeout 60 python3 tools/benchmark.py ops --providers comba_bidir sdpa --no-check --reps 20 \
    --cuda-graph --shapes 8,4097,3,64 2,16385,3,64 --out $OUT/ops_align$a.json 2>&1 | grep "^|" | tee -a $L
done
t done
