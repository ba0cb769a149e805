#!/bin/bash
# session 15 call 7 (last): the graphed-ops capture test before the fix (must fail) and after; ours, fla and SDPA at
# (128, 197, 3, 64), graphed and eager, in one process
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit
export PYTHONPATH=.:/tmp/site OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
cp comba_vision/bench.py /tmp/bench_fixed.py
cp .devdata/bench_prefix.py comba_vision/bench.py
t test before the fix, expect a failure
timeout 80 python3 -m pytest -q tests/test_bench.py -m gpu -k graphed_ops_first 2>&1 | grep -i "passed\|failed\|Implicit\|Invalidated" | cut -c1-300 | tail -4 | tee -a $L
cp /tmp/bench_fixed.py comba_vision/bench.py
t test after the fix
timeout 80 python3 -m pytest -q tests/test_bench.py -m gpu -k graphed_ops_first 2>&1 | tail -2 | tee -a $L
t ops graphed and eager at the first shape
timeout 200 python3 .devdata/opsboth.py $OUT/ops_first_shape.json 128,197,3,64 2>&1 | grep "^|\|^graphed\|^eager\|rror" | cut -c1-400 | tee -a $L
t done
