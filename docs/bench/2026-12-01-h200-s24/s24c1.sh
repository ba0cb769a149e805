#!/bin/bash
# NOTE: the settings named here were those of the working tree at the time (ORDERED_GRADS 0/1/2, BF16_GRADS_ONE 0/1);
# the code kept the order named 2 here as COMBA_ORDERED_GRADS=1, with bf16 but TF32 for dL^T P and dAqk^T Q.
# session 24, call 1: the one-kernel gradient kernel's forms. Every setting first in parallel (errors against
# float64, and compiling), then timed one after another from the warm Triton cache.
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
cp docs/bench/2026-12-01-h200-s24/kt.py /tmp/kt.py
mkdir -p /tmp/old && cp -r comba_vision /tmp/old/ && cp .devdata/old_tc.py /tmp/old/comba_vision/ops/triton_chunk.py
C=(
 "old|"
 "o0|COMBA_ORDERED_GRADS=0"
 "o1|COMBA_ORDERED_GRADS=1"
 "o2|COMBA_ORDERED_GRADS=2"
 "o0w8|COMBA_ORDERED_GRADS=0 COMBA_KERNEL_CONFIG=_bwd_grads:32:8:1"
 "o1w8|COMBA_ORDERED_GRADS=1 COMBA_KERNEL_CONFIG=_bwd_grads:32:8:1"
 "o2w8|COMBA_ORDERED_GRADS=2 COMBA_KERNEL_CONFIG=_bwd_grads:32:8:1"
 "b1|COMBA_BF16_GRADS_ONE=1 COMBA_ORDERED_GRADS=1"
 "b2|COMBA_BF16_GRADS_ONE=1 COMBA_ORDERED_GRADS=2"
 "b0w8|COMBA_BF16_GRADS_ONE=1 COMBA_ORDERED_GRADS=0 COMBA_KERNEL_CONFIG=_bwd_grads:32:8:1"
 "b1w8|COMBA_BF16_GRADS_ONE=1 COMBA_ORDERED_GRADS=1 COMBA_KERNEL_CONFIG=_bwd_grads:32:8:1"
 "b2w8|COMBA_BF16_GRADS_ONE=1 COMBA_ORDERED_GRADS=2 COMBA_KERNEL_CONFIG=_bwd_grads:32:8:1"
)
run() { local name=${1%%|*} envs=${1#*|} pp=.; [ "$name" = old ] && pp=/tmp/old
  env $envs PYTHONPATH=$pp timeout $3 python3 /tmp/kt.py $2 > $OUT/${2}_$name.json 2> $OUT/${2}_$name.err; }
t warm
for c in "${C[@]}"; do run "$c" err 250 & done; wait
for c in "${C[@]}"; do n=${c%%|*}; echo "$n $(cut -c1-400 $OUT/err_$n.json)" | tee -a $L; done
t time
for c in "${C[@]}"; do run "$c" time 60; n=${c%%|*}; echo "$n $(cat $OUT/time_$n.json)" | tee -a $L; done
t done
