#!/bin/bash
# session 25, call 4: the operator's whole GPU suite under this session's head-64 defaults (maps from _chunk_affine,
# the walk on whole V blocks with 2 stages, _fwd_output on 4 warps), with the errors of _fwd_output on 4 warps at
# head size 32 alongside; then timed: head 32 with and without it, head 64; the operator table graphed; the models at
# 1024 and 2048px (where the head-32 transition walk runs) with _fwd_output on 4 warps at head size 32.
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
cp docs/bench/2026-12-01-h200-s25/kt25.py /tmp/kt25.py
F32=COMBA_KERNEL_CONFIG=_fwd_output:32:4:1
t tests
(env $F32 PYTHONPATH=. timeout 200 python3 /tmp/kt25.py err h32 > $OUT/err32.json 2>/dev/null) &
PYTHONPATH=. timeout 260 python3 -m pytest -q -p no:cacheprovider -n 8 tests/ops/test_comba_ops.py -m gpu -rf \
  > $OUT/tests.txt 2>&1; wait
grep -E "passed|failed|FAILED|Error" $OUT/tests.txt | tail -8 | tee -a $L
cut -c1-700 $OUT/err32.json | tee -a $L
t time
PYTHONPATH=. timeout 60 python3 /tmp/kt25.py time h32 | tee -a $L
env $F32 PYTHONPATH=. timeout 60 python3 /tmp/kt25.py time h32 | tee -a $L
PYTHONPATH=. timeout 60 python3 /tmp/kt25.py time | tee -a $L
t ops
timeout 150 env PYTHONPATH=. python3 tools/benchmark.py ops --providers comba comba_bidir sdpa --no-check --reps 20 \
  --cuda-graph --out $OUT/ops.json 2>&1 | grep "^|" | tee -a $L
t models 1024 2048 with $F32
timeout 120 env $F32 PYTHONPATH=. python3 tools/benchmark.py models --models comba_tiny deit_tiny_patch16_224 --mode train --cuda-graph --img-size 1024 2048 \
  --out $OUT/models.json 2>&1 | grep "^| \|rror" | tee -a $L
t done
