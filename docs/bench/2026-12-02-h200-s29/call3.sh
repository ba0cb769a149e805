#!/bin/bash
# session 29, call 3 (about 460 s): the output zeroed by the prepare (COMBA_ZERO_IN_KERNELS=out, the new default) and
# dg, dbeta added in the gates' dtype (COMBA_HALF_GATE_GRADS=1): tests on CUDA, errors against float64 at the four
# image shapes, the gradients zeroed by _bwd_dv_local at its start (=1), every CUDA kernel with and without the half
# gate gradients, then the operator table (one direction, both, SDPA) at the four image shapes in one run.
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=.
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
K=docs/bench/2026-12-01-h200-s25/kt25.py
P=docs/bench/2026-12-01-h200-s25/prof_all.py
t "tests on CUDA"
timeout 150 python3 -m pytest -q -p no:cacheprovider -n 3 tests/ops/test_comba_ops.py -k "atomic_direction_sum" -rf \
  > $OUT/tests.txt 2>&1
grep -E "passed|failed|FAILED|Error" $OUT/tests.txt | tail -8 | tee -a $L
t "errors, defaults"
timeout 90 python3 $K err h64all 2>/dev/null | cut -c1-1400 | tee -a $L
t "COMBA_ZERO_IN_KERNELS=1: kernel ms"
COMBA_ZERO_IN_KERNELS=1 timeout 50 python3 $K time 2>/dev/null | cut -c1-900 | tee -a $L
for hg in 0 1; do
  t "COMBA_HALF_GATE_GRADS=$hg: every CUDA kernel"
  COMBA_HALF_GATE_GRADS=$hg timeout 60 python3 $P 128,197,3,64 32,1025,3,64 8,4097,3,64 2,16385,3,64 2>/dev/null | tee -a $L
done
t "ops, defaults"
timeout 240 python3 tools/benchmark.py ops --providers comba comba_bidir sdpa --no-check --reps 20 --cuda-graph \
  --shapes 128,197,3,64 32,1025,3,64 8,4097,3,64 2,16385,3,64 --out $OUT/ops.json 2>&1 | grep "^|" | tee -a $L
t done
