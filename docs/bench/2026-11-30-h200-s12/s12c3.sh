#!/bin/bash
# session 12 call 3: ncu of the operator's kernels at Comba-S's shape; launch-config sweep at Comba-T/S shapes; fused-output tests
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t tests
timeout 100 python3 -m pytest -q -n 8 -p no:cacheprovider tests/ops/test_comba_ops.py -k "output_made or short_last or gpu_matches" -rf 2>&1 | tail -3 | tee -a $L
pkill -f pytest; sleep 1
t ncu
timeout 150 ncu --clock-control none -k regex:"^(_bwd_grads|_bwd_state|_fwd_prepare_blocked|_fwd_state|_bwd_dv_local)$" -c 5 --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats --section MemoryWorkloadAnalysis python3 .devdata/kones.py > $OUT/ncu.txt 2>&1; grep -v "^    ---\|^$" $OUT/ncu.txt | grep -i "_bwd\|_fwd\|Duration\|Throughput\|Registers\|Shared Memory Config\|Dynamic Shared\|Achieved Occ\|Theoretical Occ\|Block Limit\|Stall\|Warp Cycles Per Issued\|Issued Ipc\|L2 Hit\|Local" | head -120 | tee -a $L
t sweep
timeout 200 python3 tools/benchmark.py sweep --shapes 256,196,6,32,64 256,196,3,32,64 --out $OUT/sweep.json 2>&1 | grep -v Warn | cut -c1-400 | tee -a $L
t done
