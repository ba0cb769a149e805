#!/bin/bash
# session 23 call 7: the bf16 fold test with its final bounds.
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=.
timeout 100 python3 -m pytest -q -p no:cacheprovider tests/models/test_comba_vit.py -k "norm_fold_bf16 or branch_bias" -rf 2>&1 \
  | grep -E "passed|failed|^E " | head -8 | tee $OUT/log.txt
