#!/bin/bash
# for session 31, call 1 (about 400 s): where the language-model shape's time goes, one direction at (8, 2048, 16,
# 128) (session 30: 0.797 / 2.731 ms graphed against fla 0.6.0's 0.553 / 1.836 with fla on one autotune config, the
# bar "not slower than fla"): our kernels' CUDA times (ops --profile), then a launch-option sweep of the head-128
# kernels at that shape (last swept 2026-11-29), then the kernel resources for sm_90. fla fully tuned at head size
# 128 does not fit a 10-minute call; time it with --fla-max-configs 2 or 3 in a call of its own if needed.
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=.
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t "our kernels at the language-model shape"
timeout 120 python3 tools/benchmark.py ops --providers comba --profile --no-check --shapes 8,2048,16,128 \
  --out $OUT/prof_lm.json 2>&1 | tail -30 | tee -a $L
t "sweep of the head-128 kernels"
timeout 240 python3 tools/benchmark.py sweep --shapes 8,2048,16,128 --configs 4:1 4:2 8:1 8:2 \
  --out $OUT/sweep_lm.json 2>&1 | tail -40 | tee -a $L
t "resources"
timeout 60 python3 tools/kernel_resources.py --shape 8,2048,16,128,128 --directions 1 2>&1 | tail -25 | tee -a $L
t done
