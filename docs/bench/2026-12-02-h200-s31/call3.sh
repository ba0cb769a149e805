#!/bin/bash
# session 31, call 3: the N-blocks-first inverse made the default (call 2). The operator's CUDA tests (every test of
# tests/ops/test_comba_ops.py and test_bidirectional.py that runs on CUDA, 8 workers), then the one-run table under
# the defaults: the image shapes against SDPA and the language-model shape.
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=.
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t "operator tests on CUDA, defaults"
timeout 290 python3 -m pytest -q -p no:cacheprovider -n 8 tests/ops/test_comba_ops.py tests/ops/test_bidirectional.py \
  -rf > $OUT/tests.txt 2>&1
grep -E "passed|failed|FAILED|Error" $OUT/tests.txt | tail -12 | tee -a $L
t "ops, image shapes and the language-model shape, defaults"
timeout 170 python3 tools/benchmark.py ops --providers comba comba_bidir sdpa --no-check --reps 20 --cuda-graph \
  --shapes 128,197,3,64 32,1025,3,64 8,4097,3,64 2,16385,3,64 8,2048,16,128 --out $OUT/ops.json 2>&1 \
  | grep "^|" | tee -a $L
t done
