#!/bin/bash
# prepared in session 26 for the next device session, call 2 (about 250 s): what limits the head-64 operator's
# kernels, by ncu rather than by estimate: the largest kernels of one both-direction forward+backward (ncu_call.py,
# the call inside an NVTX range) at (128, 197, 3, 64) and (2, 16385, 3, 64): speed of light, occupancy, launch
# stats, warp stall reasons, memory. Run with carry [".devdata", ".whl"].
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=.
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
D=docs/bench/2026-12-01-h200-s26
t "ncu"
for s in 128,197,3,64 2,16385,3,64; do
  timeout 120 ncu --nvtx --nvtx-include "prof/" --clock-control none \
    -k regex:"_bwd_grads|_fwd_prepare_blocked|_affine_scan|_chunk_affine|_fwd_state|_bwd_state|_state_carry" \
    --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats \
    --section MemoryWorkloadAnalysis python3 $D/ncu_call.py $s > $OUT/ncu_$s.txt 2>&1
  grep -E "^  _|Duration|Memory Throughput|Compute \(SM\) Throughput|Achieved Occupancy|Theoretical Occupancy|Registers Per|Block Limit|Waves Per SM|Stall|L2 Hit|DRAM Throughput" \
    $OUT/ncu_$s.txt | head -160 | tee -a $L
done
t done
