#!/bin/bash
# for session 31, call 1 (about 450 s): the language-model shape, one direction at (8, 2048, 16, 128) (session 30:
# 0.797 / 2.731 ms graphed against fla 0.6.0's 0.553 / 1.836 with fla on one autotune config; the bar is "not slower
# than fla"). First COMBA_PREPARE_KB (session 30, written and checked in the interpreter only): its CUDA test, then
# the operator with it off, at 64 and at 32 (sm_90 spills of the prepare there 1352 / 220 / 64 bytes a thread; at
# head 64 28 / 0 with KB 32, so the image shapes too), then where the time goes at that shape (ops --profile).
# Call 2: next_s31c2.sh (the launch-option sweep of the head-128 kernels, last swept 2026-11-29).
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=.
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t "PREPARE_KB on CUDA"
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/ops/test_comba_ops.py -k test_prepare_k_blocks -rf \
  > $OUT/tests_kb.txt 2>&1; grep -E "passed|failed|FAILED|Error" $OUT/tests_kb.txt | tail -6 | tee -a $L
for kb in 0 64 32; do
  t "ops, PREPARE_KB=$kb"
  COMBA_PREPARE_KB=$kb timeout 80 python3 tools/benchmark.py ops --providers comba comba_bidir --no-check --reps 20 \
    --cuda-graph --shapes 8,2048,16,128 32,1025,3,64 --out $OUT/ops_kb$kb.json 2>&1 | grep "^|" | tee -a $L
done
t "our kernels at the language-model shape"
timeout 100 python3 tools/benchmark.py ops --providers comba --profile --no-check --shapes 8,2048,16,128 \
  --out $OUT/prof_lm.json 2>&1 | tail -30 | tee -a $L
t done
