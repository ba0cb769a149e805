#!/bin/bash
# session 24, call 3: _bwd_grads_cc (head size 64) in the reordered form (COMBA_ORDERED_CC=1) against the current
# one: errors against float64 at two small shapes, kernel ms at the operator table's shapes; then the operator's GPU
# tests under the faster correct setting (which also runs the final head-32 defaults of call 2's commit).
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
cp docs/bench/2026-12-01-h200-s24/kt.py /tmp/kt.py
mkdir -p /tmp/r
C=("c0|COMBA_ORDERED_CC=0" "c1|COMBA_ORDERED_CC=1")
run() { local name=${1%%|*} envs=${1#*|}
  env $envs PYTHONPATH=. timeout $3 python3 /tmp/kt.py $2 h64 > /tmp/r/${2}_$name.json 2> /tmp/r/${2}_$name.err; }
t warm
for c in "${C[@]}"; do run "$c" err 200 & done; wait
for c in "${C[@]}"; do n=${c%%|*}; echo "$n $(cat /tmp/r/err_$n.json)" | tee -a $L; done
t time
for r in 1 2; do for c in "${C[@]}"; do run "$c" time 60; n=${c%%|*}; echo "$n $(cat /tmp/r/time_$n.json)" | tee -a $L; done; done
BEST=$(python3 - <<'PY'
import json
try:
    e = json.load(open("/tmp/r/err_c1.json")); t0 = json.load(open("/tmp/r/time_c0.json")); t1 = json.load(open("/tmp/r/time_c1.json"))
    tot = lambda t: sum(v["total"] for k, v in t.items() if k.startswith("("))
    print(1 if "error" not in e and e["max_err"] < 1e-2 and tot(t1) < tot(t0) else 0)
except Exception:
    print(0)
PY
)
export COMBA_ORDERED_CC=$BEST
t "ORDERED_CC=$BEST tests"
timeout 230 env PYTHONPATH=. python3 -m pytest -q -p no:cacheprovider -n 8 tests/ops/test_comba_ops.py -m gpu -rf \
  > $OUT/tests.txt 2>&1
grep -E "passed|failed|FAILED|Error" $OUT/tests.txt | tail -8 | tee -a $L
t done
# (COMBA_ORDERED_CC was a trial switch of this session's working tree; slower, removed before the commit.)
