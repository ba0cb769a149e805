#!/bin/bash
# prepared in session 25 for the next device session, call 2 (about 400 s): the operator's whole GPU suite under the
# setting call 1 found best (SETTING, e.g. SETTING="COMBA_SPLIT_TAIL=1" bash next_s26c2.sh), then the operator table
# against SDPA, graphed, with that setting (compare with session 25's call 4 table under the defaults), and every
# CUDA kernel of one eager call, PyTorch's included (what a graphed call spends outside our kernels).
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t "tests under ${SETTING:-the defaults}"
env $SETTING PYTHONPATH=. timeout 260 python3 -m pytest -q -p no:cacheprovider -n 8 tests/ops/test_comba_ops.py -m gpu \
  -rf > $OUT/tests.txt 2>&1
grep -E "passed|failed|FAILED|Error" $OUT/tests.txt | tail -8 | tee -a $L
t ops
env $SETTING PYTHONPATH=. timeout 150 python3 tools/benchmark.py ops --providers comba comba_bidir sdpa --no-check \
  --reps 20 --cuda-graph --out $OUT/ops.json 2>&1 | grep "^|" | tee -a $L
t "every CUDA kernel, ours and PyTorch's, under ${SETTING:-the defaults} (prof_all.py)"
env $SETTING PYTHONPATH=. timeout 90 python3 docs/bench/2026-12-01-h200-s25/prof_all.py 2>/dev/null | tee -a $L
t done
