#!/bin/bash
# (the COMBA_DBG_KDH_SLICES / COMBA_DBG_NO_LOOP switches were temporary hooks of that call, not kept)
# session 30 call 2: the COMPLETE_IN_GRADS illegal access, variants (see probe_complete.py)
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=.
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
P=docs/bench/2026-12-02-h200-s30/probe_complete.py
which compute-sanitizer 2>&1 | tee -a $L; ls /usr/local/cuda*/bin 2>/dev/null | grep -i sanit | tee -a $L
t "baseline COMPLETE=1 blocking"
COMBA_COMPLETE_IN_GRADS=1 CUDA_LAUNCH_BLOCKING=1 timeout 120 python3 $P 1,4100,1,32,16 sum 2>&1 | tail -3 | tee -a $L
for s in "1,4100,1,32,16 stack" "1,4100,1,32,32 sum" "1,4100,2,32,16 sum" "2,1100,1,32,16 sum" "1,4096,1,32,16 sum"; do
  t "COMPLETE=1 $s"; COMBA_COMPLETE_IN_GRADS=1 timeout 100 python3 $P $s 2>&1 | tail -1 | tee -a $L
done
t "COMPLETE=1 padded KDH"; COMBA_DBG_KDH_SLICES=4 COMBA_COMPLETE_IN_GRADS=1 timeout 100 python3 $P 1,4100,1,32,16 sum 2>&1 | tail -1 | tee -a $L
t "COMPLETE=1 no loop"; COMBA_DBG_NO_LOOP=1 COMBA_COMPLETE_IN_GRADS=1 timeout 100 python3 $P 1,4100,1,32,16 sum 2>&1 | tail -1 | tee -a $L
t "COMPLETE=1 ORDERED=0"; COMBA_ORDERED_GRADS=0 COMBA_COMPLETE_IN_GRADS=1 timeout 100 python3 $P 1,4100,1,32,16 sum 2>&1 | tail -1 | tee -a $L
t "COMPLETE=0"; COMBA_COMPLETE_IN_GRADS=0 timeout 100 python3 $P 1,4100,1,32,16 sum 2>&1 | tail -1 | tee -a $L
t done
