#!/bin/bash
# session 15 call 5: what before the capture decides the failure
export PYTHONPATH=. OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
for a in noeager eager fwdgraph bench; do
  t capdiag4 $a
  timeout 60 python3 .devdata/capdiag4.py $a 2>&1 | grep "RAISED\|captured\|FAILED\|ms " | cut -c1-600 | tee -a $L
done
t done
