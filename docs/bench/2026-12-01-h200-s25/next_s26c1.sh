#!/bin/bash
# prepared in session 25 for the next device session, call 1 (about 300 s): three trials written after the device
# time was spent, against the defaults (all interpreter-tested only):
# - COMBA_SPLIT_TAIL=1: the short last chunk on its own tile at head size 64, its gradient through one _bwd_grads;
# - the one-kernel gradient at head size 64 (COMBA_SPLIT_BWD=0 with the precomputed products, COMBA_PRE_BKS=32,64:
#   session 24's ordered bf16 form; sm_90 compile from the CPU host: 412 bytes of spills on 4 warps, 24 on 8);
# - COMBA_HALF_MAPS=1: the transition walk's maps in bf16 (K~^T W alone, the decay applied exactly by the walk);
# and, launch options only, the head-64 state walks of the short shapes on V blocks of 32 (twice the programs).
# Errors against float64 on the GPU (in parallel, compiling; for the maps also with gates a hundred times weaker and
# with one tiny constant gate, KT_WEAK_DECAY: the default walk rounds its whole float32 A, the decay on its diagonal
# included, to TF32 each chunk, the same rounding every step when the gate is constant), then each kernel's time at the operator table's four image shapes (head size 64) and, for the
# maps, at the models' long mixer shapes (head size 32), one setting after another. Run with carry [".devdata", ".whl"].
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
cp docs/bench/2026-12-01-h200-s25/kt25.py /tmp/kt25.py
C=(
 "def||h64all"
 "tail|COMBA_SPLIT_TAIL=1|h64all"
 "one|COMBA_SPLIT_BWD=0 COMBA_PRE_BKS=32,64|h64all"
 "one8|COMBA_SPLIT_BWD=0 COMBA_PRE_BKS=32,64 COMBA_KERNEL_CONFIG=_bwd_grads:64:8:1|h64all"
 "one41|COMBA_SPLIT_BWD=0 COMBA_PRE_BKS=32,64 COMBA_KERNEL_CONFIG=_bwd_grads:64:4:1|h64all"
 "hm|COMBA_HALF_MAPS=1|h64all"
 "st32|COMBA_KERNEL_CONFIG=_fwd_state:64:4:2:32,_bwd_state:64:4:2:32|h64all"
 "hmweak|COMBA_HALF_MAPS=1 KT_WEAK_DECAY=1|"
 "defweak|KT_WEAK_DECAY=1|"
 "hmconst|COMBA_HALF_MAPS=1 KT_WEAK_DECAY=const|"
 "defconst|KT_WEAK_DECAY=const|"
 "walk0const|COMBA_TRANSITION_WALK=0 KT_WEAK_DECAY=const|"
 "hm32|COMBA_HALF_MAPS=1|h32"
 "def32||h32"
)
run() { local name=${1%%|*} rest=${1#*|}; local envs=${rest%%|*} extra=${rest#*|}
  env $envs PYTHONPATH=. timeout $3 python3 /tmp/kt25.py $2 $extra > $OUT/${2}_$name.json 2> $OUT/${2}_$name.err; }
t errors
for c in "${C[@]}"; do run "$c" err 220 & done; wait
for c in "${C[@]}"; do n=${c%%|*}; echo "$n $(cut -c1-900 $OUT/err_$n.json) $(grep -v Warn $OUT/err_$n.err | tail -c 300)" | tee -a $L; done
t time
for c in "${C[@]}"; do case $c in *weak*|*const*) continue;; esac
  run "$c" time 60; n=${c%%|*}; echo "$n $(cat $OUT/time_$n.json)" | tee -a $L; done
rm -f $OUT/err_* $OUT/time_*
t done
