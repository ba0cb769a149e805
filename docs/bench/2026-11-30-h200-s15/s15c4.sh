#!/bin/bash
# session 15 call 4: the first forward+backward capture of a process: batch sizes and capture modes
export PYTHONPATH=. OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
for a in "thread_local 128" "thread_local 8" "thread_local 32" "thread_local 64" "relaxed 128" "global 128"; do
  t capdiag3 $a
  timeout 60 python3 .devdata/capdiag3.py $a 2>&1 | grep "RAISED\|B=\|last ops" | cut -c1-900 | tee -a $L
done
t done
