#!/bin/bash
# prepared in session 26 for the next device session, call 1 (about 550 s; next_s27c2.sh has the ncu profile).
# (1) COMBA_SHARED_DO (one dO for both directions; written after session 26's device time): its tests on CUDA and
# every CUDA kernel of one call with and without it (prof_all.py: the stacked dO was 0.009-0.011 ms).
# (2) Kernel ms (kt25.py) at the four head-64 image shapes under launch options not timed since half maps and the
# one-kernel gradient became the defaults (among them the head-64 gradient kernel on 32-wide V blocks: sm_90 compile
# from the CPU host, 412 -> 52 bytes of spills, 81920 -> 73728 bytes of shared memory), and COMBA_CARRY_PREC=tf32
# (the groups' carry on one-pass TF32, written after session 26's device time), with its errors against float64.
# Run with carry [".devdata", ".whl"].
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=.
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
D=docs/bench/2026-12-01-h200-s26; K=docs/bench/2026-12-01-h200-s25/kt25.py
t "errors: carry on one-pass TF32 (long shapes, heads 64 and 32; also one tiny constant gate)"
COMBA_CARRY_PREC=tf32 timeout 120 python3 $K err > $OUT/e_c64.json 2>/dev/null &
COMBA_CARRY_PREC=tf32 timeout 120 python3 $K err h32 > $OUT/e_c32.json 2>/dev/null &
COMBA_CARRY_PREC=tf32 KT_WEAK_DECAY=const timeout 120 python3 $K err > $OUT/e_cconst.json 2>/dev/null &
wait; for f in c64 c32 cconst; do echo "$f $(cut -c1-700 $OUT/e_$f.json)" | tee -a $L; done
t "COMBA_SHARED_DO: its tests on CUDA, then every CUDA kernel of one call with and without it"
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/ops/test_bidirectional.py -k "shared_do or custom_ops" -rf \
  2>&1 | grep -E "passed|failed|FAILED|Error" | tail -5 | tee -a $L
for a in 1 0; do COMBA_SHARED_DO=$a timeout 50 python3 docs/bench/2026-12-01-h200-s25/prof_all.py 2>/dev/null | tee -a $L; done
t "kernel ms under launch options"
C=(
 "def|"
 "carry_tf32|COMBA_CARRY_PREC=tf32"
 "carry_bv32|COMBA_KERNEL_CONFIG=_state_carry:64:4:1:32"
 "carry_bv16|COMBA_KERNEL_CONFIG=_state_carry:64:4:1:16"
 "prep4|COMBA_KERNEL_CONFIG=_fwd_prepare_blocked:64:4:1"
 "grads42|COMBA_KERNEL_CONFIG=_bwd_grads:64:4:2"
 "gradsbv32|COMBA_KERNEL_CONFIG=_bwd_grads:64:4:3:32"
 "scan8|COMBA_KERNEL_CONFIG=_affine_scan:64:8:2:64"
 "scan32|COMBA_KERNEL_CONFIG=_affine_scan:64:4:2:32"
 "aff2|COMBA_KERNEL_CONFIG=_chunk_affine:64:2:1"
)
for c in "${C[@]}"; do n=${c%%|*}; e=${c#*|}
  env $e timeout 90 python3 $K time h64all > $OUT/t_$n.json 2>/dev/null; echo "$n $(cat $OUT/t_$n.json)" | tee -a $L; done
# the models' head size 32 (long mixer shapes): the ordered bf16 gradient kernel on 32-wide V blocks (sm_90 compile
# from the CPU host: 296 -> 92 bytes of spills; session 18 timed 32-wide blocks slower in the old TF32 form)
for c in "def32|" "gradsbv32_32|COMBA_KERNEL_CONFIG=_bwd_grads:32:4:1:32"; do n=${c%%|*}; e=${c#*|}
  env $e timeout 90 python3 $K time h32 > $OUT/t_$n.json 2>/dev/null; echo "$n $(cat $OUT/t_$n.json)" | tee -a $L; done
rm -f $OUT/e_*.json $OUT/t_*.json
t done
