#!/bin/bash
# session 16 call 3: the illegal memory access at long sequences with half work buffers: which case, which kernel
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. CUDA_LAUNCH_BLOCKING=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
r() { timeout 60 python3 .devdata/iam.py "$@" 2>&1 | grep "ok\|FAILED" | tee -a $L; }
COMBA_HALF_BUFFERS=0 r bidir 2:16385:3:64:64
r bidir 2:16385:3:64:64
r bidir_fwd 2:16385:3:64:64
r single 2:16385:3:64:64
r bidir 1:4097:2:64:64
COMBA_STATE_GROUP=0 r bidir 2:16385:3:64:64
t done
