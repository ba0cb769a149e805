#!/bin/bash
# session 27, call 4 (the last; about 480 s): the committed defaults (SHARED_DO, CARRY_PREC=tf32, the last chunk on a
# whole tile beyond 32 chunks): errors against float64 at the long head-64 shapes (their 1-token last chunk now on a
# whole tile), each kernel's time, every CUDA kernel of a call, the operator table (graphed), the one-run model table,
# then the tests of the tail tiles and the launch at 1025 tokens on CUDA in the time left.
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=.
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
K=docs/bench/2026-12-01-h200-s25/kt25.py
t "errors against float64, head 64 long shapes (normal gates, one tiny constant gate)"
timeout 100 python3 $K err > $OUT/e64.json 2>/dev/null &
KT_WEAK_DECAY=const timeout 100 python3 $K err > $OUT/econst.json 2>/dev/null &
wait; for f in e64 econst; do echo "$f $(cut -c1-800 $OUT/$f.json)" | tee -a $L; done
t "kernel ms"
timeout 90 python3 $K time h64all 2>/dev/null | tee -a $L
t ops
timeout 160 python3 tools/benchmark.py ops --providers comba comba_bidir sdpa --no-check --reps 20 --cuda-graph \
  --out $OUT/ops.json 2>&1 | grep "^|" | tee -a $L
t "every CUDA kernel (prof_all.py)"
timeout 60 python3 docs/bench/2026-12-01-h200-s25/prof_all.py 128,197,3,64 32,1025,3,64 8,4097,3,64 2,16385,3,64 \
  2>/dev/null | tee -a $L
t models: one run, every size
timeout 200 python3 tools/benchmark.py models --mode train --cuda-graph --img-size 224 512 1024 2048 \
  --out $OUT/models.json 2>&1 | grep "^| \|rror" | tee -a $L
t "tests on CUDA (what time is left)"
timeout $(( 470 - $(date +%s) + T0 )) python3 -m pytest -q -p no:cacheprovider -n 8 tests/ops/test_comba_ops.py \
  -k "short_last_chunk or tail_tile or output_launch_at_1025 or carry_precision" -rf > $OUT/tests.txt 2>&1
grep -E "passed|failed|FAILED|Error" $OUT/tests.txt | tail -8 | tee -a $L
t done
