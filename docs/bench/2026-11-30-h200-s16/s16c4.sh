#!/bin/bash
# session 16 call 4: the illegal memory access of call 2 (nanfill's third shape) again, with CUDA_LAUNCH_BLOCKING=1
# to name the kernel; half and float32 buffers; compute-sanitizer where the machine has it
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=.
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1); echo "sanitizer: $CS" | tee -a $L
S="4:197:3:64:64 2:1025:3:64:64 1:4097:2:64:64 2:16385:3:64:64"
t nanfill half, no blocking
timeout 90 python3 .devdata/nanfill_gpu.py $S 2>&1 | grep -v "^  \|Warning" | tail -8 | tee -a $L
t nanfill half, blocking
CUDA_LAUNCH_BLOCKING=1 timeout 90 python3 .devdata/nanfill_gpu.py $S 2>&1 | grep "finite\|Error\|File.*comba_vision" | tail -12 | tee -a $L
t nanfill float32 buffers, no blocking
COMBA_HALF_BUFFERS=0 timeout 90 python3 .devdata/nanfill_gpu.py $S 2>&1 | grep -v "^  \|Warning" | tail -8 | tee -a $L
if [ -n "$CS" ]; then
  t sanitizer
  timeout 200 $CS --tool memcheck --print-limit 5 python3 .devdata/nanfill_gpu.py 1:4097:2:64:64 2>&1 | grep -v "^    \|Warning" | head -40 | tee -a $L
fi
t done
