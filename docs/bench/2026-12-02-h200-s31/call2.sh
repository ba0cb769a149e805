#!/bin/bash
# session 31, call 2: call 1's CUDA tests ran out of their 150 s in compilation (one passed) and its default run at
# 85 s; here the tests with more time, then the default and COMBA_INVERSE_N_FIRST=1 alternately, twice each, at the
# language-model shape and (32, 1025, 3, 64), in separate processes.
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=.
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t "CUDA tests of PREPARE_KB and INVERSE_N_FIRST"
timeout 250 python3 -m pytest -q -p no:cacheprovider tests/ops/test_comba_ops.py \
  -k "prepare_k_blocks or diagonal_inverse_variants" -rf > $OUT/tests.txt 2>&1
grep -E "passed|failed|FAILED|Error" $OUT/tests.txt | tail -8 | tee -a $L
for r in 1 2; do for s in COMBA_INVERSE_N_FIRST=0 COMBA_INVERSE_N_FIRST=1; do
  t "ops, $s, run $r"
  env $s timeout 75 python3 tools/benchmark.py ops --providers comba comba_bidir --no-check --reps 20 --cuda-graph \
    --shapes 8,2048,16,128 32,1025,3,64 2>&1 | grep "^| (" | tee -a $L
done; done
t done
