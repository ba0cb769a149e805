#!/bin/bash
# session 25, call 2: the long-sequence walk at head size 64 (the operator bars' T = 4097 and 16385): launch options
# of _affine_scan (V block, warps, stages), the transition walk's group size, the folded prepare's warps, the fold and
# the walk themselves. Every setting first in parallel (errors against float64 on the GPU, and compiling), then timed
# one after another from the warm Triton cache.
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
cp docs/bench/2026-12-01-h200-s25/kt25.py /tmp/kt25.py
C=(
 "def|"
 "s64s2|COMBA_KERNEL_CONFIG=_affine_scan:64:4:2:64"
 "s64s3|COMBA_KERNEL_CONFIG=_affine_scan:64:4:3:64"
 "s64w8|COMBA_KERNEL_CONFIG=_affine_scan:64:8:2:64"
 "s32s1|COMBA_KERNEL_CONFIG=_affine_scan:64:4:1:32"
 "s16s2|COMBA_KERNEL_CONFIG=_affine_scan:64:4:2:16"
 "g8|COMBA_TRANSITION_GROUP=8"
 "g32|COMBA_TRANSITION_GROUP=32"
 "pw8|COMBA_KERNEL_CONFIG=_fwd_prepare_blocked_affine:64:8:1"
 "fold0|COMBA_TRANSITION_FOLD=0"
 "walk0|COMBA_TRANSITION_WALK=0"
)
run() { local name=${1%%|*} envs=${1#*|}
  env $envs PYTHONPATH=. timeout $3 python3 /tmp/kt25.py $2 > $OUT/${2}_$name.json 2> $OUT/${2}_$name.err; }
t warm
for c in "${C[@]}"; do run "$c" err 200 & done; wait
for c in "${C[@]}"; do n=${c%%|*}; echo "$n $(cut -c1-600 $OUT/err_$n.json) $(tail -c 200 $OUT/err_$n.err)" >> $OUT/all.txt; done
t time
for c in "${C[@]}"; do run "$c" time 40; n=${c%%|*}; echo "$n $(cat $OUT/time_$n.json)" | tee -a $L; done
cat $OUT/all.txt >> $L; rm -f $OUT/err_* $OUT/time_*
t done
