#!/bin/bash
# for session 31, call 2 (about 300 s): the launch options of the head-128 kernels at the language-model shape
# (last swept 2026-11-29, before several changes). sm_90 spills there under the committed options (session 30):
# _fwd_prepare_blocked 1352 bytes a thread on 2 warps (924 on 4, 692 on 8), _bwd_grads_cc 528 on 4 (100 on 8),
# _bwd_state_halves 464 on 2 (none on 4). Set SETTING (e.g. COMBA_PREPARE_KB=64) to what call 1 kept.
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=.
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t "sweep of the head-128 kernels ($SETTING)"
env $SETTING timeout 280 python3 tools/benchmark.py sweep --shapes 8,2048,16,128 --configs 2:1 4:1 4:2 8:1 8:2 \
  --out $OUT/sweep_lm.json 2>&1 | tail -40 | tee -a $L
t done
