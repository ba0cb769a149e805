#!/bin/bash
# session 25, call 3: under the new head-64 defaults (the maps from _chunk_affine, COMBA_TRANSITION_FOLD=auto; the
# walk on whole V blocks with 2 stages), launch options of the walk's other kernels at head size 64; the walk's V
# block and stages at head size 32 (the models'); then the operator table against SDPA, graphed, in one run.
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
cp docs/bench/2026-12-01-h200-s25/kt25.py /tmp/kt25.py
C=(
 "def||"
 "ca2|COMBA_KERNEL_CONFIG=_chunk_affine:64:2:1|"
 "ca8|COMBA_KERNEL_CONFIG=_chunk_affine:64:8:1|"
 "ca4s2|COMBA_KERNEL_CONFIG=_chunk_affine:64:4:2|"
 "cr64|COMBA_KERNEL_CONFIG=_state_carry:64:4:1:64|"
 "cr8|COMBA_KERNEL_CONFIG=_state_carry:64:8:1|"
 "fo4|COMBA_KERNEL_CONFIG=_fwd_output:64:4:1|"
 "bc2|COMBA_KERNEL_CONFIG=_bwd_complete:64:2:1|"
 "bc8|COMBA_KERNEL_CONFIG=_bwd_complete:64:8:1|"
 "h32def||h32"
 "h32s64|COMBA_KERNEL_CONFIG=_affine_scan:32:4:2:64|h32"
 "h32s2|COMBA_KERNEL_CONFIG=_affine_scan:32:4:2|h32"
)
run() { local name=${1%%|*} rest=${1#*|}; local envs=${rest%%|*} extra=${rest#*|}
  env $envs PYTHONPATH=. timeout $3 python3 /tmp/kt25.py $2 $extra > $OUT/${2}_$name.json 2> $OUT/${2}_$name.err; }
t warm, and the GPU tests of the walk under the new defaults
PYTHONPATH=. timeout 220 python3 -m pytest -q -p no:cacheprovider -n 4 tests/ops/test_comba_ops.py -m gpu \
  -k "transition or walk" -rf > $OUT/tests.txt 2>&1 &
for c in "${C[@]}"; do run "$c" err 200 & done; wait
grep -E "passed|failed|FAILED|Error" $OUT/tests.txt | tail -8 | tee -a $L
for c in "${C[@]}"; do n=${c%%|*}; echo "$n $(cut -c1-600 $OUT/err_$n.json) $(grep -v Warn $OUT/err_$n.err | tail -c 200)" >> $OUT/all.txt; done
t time
for c in "${C[@]}"; do run "$c" time 40; n=${c%%|*}; echo "$n $(cat $OUT/time_$n.json)" | tee -a $L; done
cat $OUT/all.txt >> $L; rm -f $OUT/err_* $OUT/time_* $OUT/all.txt
t ops
timeout 200 env PYTHONPATH=. python3 tools/benchmark.py ops --providers comba comba_bidir sdpa --no-check --reps 20 \
  --cuda-graph --out $OUT/ops.json 2>&1 | grep -v Warn | tail -20 | tee -a $L
t done
