#!/bin/bash
# session 16 call 5: the grouped walk with half work buffers: initcheck (reads of memory never written), and the
# reproducer (nanfill's shape sequence) under variants
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=.
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
CS=/usr/local/cuda/bin/compute-sanitizer
t initcheck half 1:4097:2
timeout 150 $CS --tool initcheck --print-limit 4 python3 .devdata/nanfill_gpu.py 1:4097:2:64:64 2>&1 | grep -v "^    \|Warning" | head -30 | tee -a $L
S="4:197:3:64:64 2:1025:3:64:64 1:4097:2:64:64 2:16385:3:64:64"
for v in COMBA_STATE_GROUP=0 COMBA_BF16_DOTS=0 COMBA_KERNEL_CONFIG=_fwd_state:64:8:1,_bwd_state:64:8:1 COMBA_HALF_BUFFERS=1; do
  t nanfill $v
  env $v timeout 60 python3 .devdata/nanfill_gpu.py $S 2>&1 | grep "finite\|Error" | tail -8 | tee -a $L
done
t done
