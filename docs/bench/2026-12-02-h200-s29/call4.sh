#!/bin/bash
# session 29, call 4 (the last, about 430 s): COMBA_COMPLETE_IN_GRADS (dU completed by the one-kernel gradient after
# the transition walk, no _bwd_complete; new default) with the output zeroed by the prepare: the transition walk's
# tests on CUDA, each kernel's time with the fold off and on, the operator table at the four image shapes (one
# direction, both, SDPA) and the one-run model table under the new defaults, then the errors at the long shapes.
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=.
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
K=docs/bench/2026-12-01-h200-s25/kt25.py
t "transition walk tests on CUDA"
timeout 110 python3 -m pytest -q -p no:cacheprovider -n 8 tests/ops/test_comba_ops.py \
  -k "test_transition_walk or half_maps or atomic_direction_sum" -rf > $OUT/tests.txt 2>&1
grep -E "passed|failed|FAILED|Error" $OUT/tests.txt | tail -8 | tee -a $L
for c in 0 1; do
  t "COMBA_COMPLETE_IN_GRADS=$c: kernel ms"
  COMBA_COMPLETE_IN_GRADS=$c timeout 40 python3 $K time 2>/dev/null | cut -c1-900 | tee -a $L
done
t "ops, defaults"
timeout 90 python3 tools/benchmark.py ops --providers comba comba_bidir sdpa --no-check --reps 20 --cuda-graph \
  --shapes 128,197,3,64 32,1025,3,64 8,4097,3,64 2,16385,3,64 --out $OUT/ops.json 2>&1 | grep "^|" | tee -a $L
t "models: one run, every size"
timeout 185 python3 tools/benchmark.py models --mode train --cuda-graph --img-size 224 512 1024 2048 \
  --out $OUT/models.json 2>&1 | grep "^| \|rror" | tee -a $L
t "errors against float64, head 64 long shapes"
timeout $(( 480 - $(date +%s) + T0 )) python3 $K err > $OUT/e64.json 2>/dev/null
cut -c1-800 $OUT/e64.json | tee -a $L
t done
