#!/bin/bash
# session 27, call 3: COMBA_ORDERED_SUM (both directions' gradients, and the transition walk's outputs, summed inside
# the kernels, one launch a direction) against the elementwise adds: every CUDA kernel of one call at the four head-64
# image shapes; ncu of every kernel of one forward+backward (backward included) at T = 197 and 16385; then the GPU
# tests under the new defaults (SHARED_DO, CARRY_PREC=tf32) with ORDERED_SUM on.
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=.
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
D=docs/bench/2026-12-01-h200-s27; S="128,197,3,64 32,1025,3,64 8,4097,3,64 2,16385,3,64"
t "every CUDA kernel of one call (prof_all.py), ORDERED_SUM 1 then 0 then 1"
for a in 1 0 1; do COMBA_ORDERED_SUM=$a timeout 80 python3 docs/bench/2026-12-01-h200-s25/prof_all.py $S 2>/dev/null \
  | sed "s/^/ordered=$a /" | tee -a $L; done
t "ncu, ORDERED_SUM=1"
for s in 128,197,3,64 2,16385,3,64; do n=${s//,/_}
  COMBA_ORDERED_SUM=1 timeout 150 ncu --profile-from-start off --clock-control none \
    -k regex:"^_" --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats \
    --section SchedulerStats --section MemoryWorkloadAnalysis python3 $D/ncu_call.py $s > $OUT/ncu_$n.txt 2>&1
  grep -E "^  _|Duration|Memory Throughput|Compute \(SM\) Throughput|Achieved Occupancy|Registers Per|Waves Per SM|Warp Cycles Per Issued|Issue Slots Busy|No Eligible|Eligible Warps|DRAM Throughput" \
    $OUT/ncu_$n.txt | tee -a $L
done
t "tests on CUDA, ORDERED_SUM=1"
COMBA_ORDERED_SUM=1 timeout 150 python3 -m pytest -q -p no:cacheprovider -n 8 tests/ops/test_comba_ops.py \
  tests/ops/test_bidirectional.py tests/ops/test_mixer_joint.py -k "direction_sum_in_kernel or shared_do or carry_precision" \
  -rf > $OUT/tests2.txt 2>&1; grep -E "passed|failed|FAILED|Error" $OUT/tests2.txt | tail -8 | tee -a $L
COMBA_ORDERED_SUM=1 timeout 260 python3 -m pytest -q -p no:cacheprovider -n 8 tests/ops/test_comba_ops.py -m gpu \
  -rf > $OUT/tests.txt 2>&1; grep -E "passed|failed|FAILED|Error" $OUT/tests.txt | tail -8 | tee -a $L
t done
