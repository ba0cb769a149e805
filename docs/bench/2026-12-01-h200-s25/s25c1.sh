#!/bin/bash
# session 25, call 1: session 24's next_s25c1.sh (the operator's GPU tests under session 24's final code, the one-run
# model table), then each kernel's time at the head-64 operator shapes (where the operator bars are measured).
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=.
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
bash docs/bench/2026-12-01-h200-s24/next_s25c1.sh
t kernels head 64
timeout 150 python3 tools/benchmark.py kernels --no-check --shapes 128,197,3,64 32,1025,3,64 8,4097,3,64 2,16385,3,64 \
  --out $OUT/kernels.json > $OUT/kernels.txt 2>&1; tail -60 $OUT/kernels.txt | tee -a $L
t done
