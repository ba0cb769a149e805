#!/bin/bash
# session 23 call 6: the bf16 fold test with its aggregate bound, three times (its bf16 results vary from run to
# run), then the model tests around it.
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=.
L=$OUT/log.txt
for i in 1 2 3; do
  timeout 60 python3 -m pytest -q -p no:cacheprovider tests/models/test_comba_vit.py -k norm_fold_bf16 -rf 2>&1 \
    | grep -E "passed|failed|^E " | head -6 | tee -a $L
done
timeout 150 python3 -m pytest -q -p no:cacheprovider -n 8 tests/models/test_comba_vit.py tests/layers -rf > $OUT/tests.txt 2>&1
grep -E "passed|failed|FAILED|^E " $OUT/tests.txt | tail -8 | tee -a $L
