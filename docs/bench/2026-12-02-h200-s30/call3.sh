#!/bin/bash
# session 30 call 3 (at most 580 s): COMPLETE_IN_GRADS on by default with the V <= 16 guard (_complete_in_grads): the
# CUDA tests of the transition walk, half maps, the atomic direction sum and both directions (the selection whose one
# failure call 1 named, plus the models' both-direction walks), then the one-run tables under the defaults: the
# operator at the image shapes, the models at every size, the language-model shape with what time is left.
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=.
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t "tests on CUDA, defaults"
timeout 200 python3 -m pytest -q -p no:cacheprovider -n 8 tests/ops/test_comba_ops.py -rf \
  -k "test_transition_walk or half_maps or atomic_direction_sum or both_directions" > $OUT/tests.txt 2>&1
grep -E "passed|failed|FAILED|Error" $OUT/tests.txt | tail -12 | tee -a $L
t "ops, image shapes, defaults"
timeout 110 python3 tools/benchmark.py ops --providers comba comba_bidir sdpa --no-check --reps 20 \
  --cuda-graph --shapes 128,197,3,64 32,1025,3,64 8,4097,3,64 2,16385,3,64 --out $OUT/ops.json 2>&1 | grep "^|" | tee -a $L
t "models, every size, defaults"
timeout 200 python3 tools/benchmark.py models --mode train --cuda-graph --img-size 224 512 1024 2048 \
  --out $OUT/models.json 2>&1 | grep "^| \|rror" | tee -a $L
t "ops, language-model shape"
timeout $(( 580 - $(date +%s) + T0 )) python3 tools/benchmark.py ops --providers comba sdpa --no-check \
  --reps 20 --cuda-graph --shapes 8,2048,16,128 --out $OUT/ops_lm.json 2>&1 | grep "^|" | tee -a $L
t done
