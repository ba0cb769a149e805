#!/bin/bash
# session 29, call 2 (about 450 s): COMBA_ZERO_IN_KERNELS (the summed output zeroed by the prepare, the gradient
# buffers by _bwd_dv_local): its tests on CUDA, then each kernel's time and every CUDA kernel of a call off and on,
# then the bidirectional operator table at the four image shapes under the new defaults.
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=.
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
K=docs/bench/2026-12-01-h200-s25/kt25.py
P=docs/bench/2026-12-01-h200-s25/prof_all.py
t "zeroing tests on CUDA"
timeout 200 python3 -m pytest -q -p no:cacheprovider -n 8 tests/ops/test_comba_ops.py tests/ops/test_bidirectional.py \
  -k "atomic_direction_sum or shared_do or one_launch_matches" -rf > $OUT/tests.txt 2>&1
grep -E "passed|failed|FAILED|Error" $OUT/tests.txt | tail -8 | tee -a $L
for z in 0 1; do
  t "COMBA_ZERO_IN_KERNELS=$z: kernel ms, every CUDA kernel"
  COMBA_ZERO_IN_KERNELS=$z timeout 50 python3 $K time 2>/dev/null | cut -c1-900 | tee -a $L
  COMBA_ZERO_IN_KERNELS=$z timeout 60 python3 $P 128,197,3,64 32,1025,3,64 8,4097,3,64 2,16385,3,64 2>/dev/null | tee -a $L
done
t "ops, defaults"
timeout 150 python3 tools/benchmark.py ops --providers comba_bidir sdpa --no-check --reps 20 --cuda-graph \
  --shapes 128,197,3,64 32,1025,3,64 8,4097,3,64 2,16385,3,64 --out $OUT/ops.json 2>&1 | grep "^|" | tee -a $L
t done
