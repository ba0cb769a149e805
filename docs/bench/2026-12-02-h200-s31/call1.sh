#!/bin/bash
# session 31, call 1: the two opt-in forms of the blocked prepare written after session 30's device time, tested on
# CUDA and timed against the default in separate processes: COMBA_PREPARE_KB=64|32 (k and p read a K block at a
# time) and COMBA_INVERSE_N_FIRST=1 (the ten N blocks before the diagonal inverses). Shapes: the language-model
# shape (8, 2048, 16, 128) one direction, (32, 1025, 3, 64) and Comba-T's layer (128, 197, 3, 32, 64).
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=.
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader | tee -a $L
python3 -c "import torch, triton; print(torch.__version__, triton.__version__)" | tee -a $L
t "CUDA tests of PREPARE_KB and INVERSE_N_FIRST"
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/ops/test_comba_ops.py \
  -k "prepare_k_blocks or diagonal_inverse_variants" -rf > $OUT/tests.txt 2>&1
grep -E "passed|failed|FAILED|Error" $OUT/tests.txt | tail -8 | tee -a $L
for s in "COMBA_PREPARE_KB=0" "COMBA_PREPARE_KB=64" "COMBA_PREPARE_KB=32" "COMBA_INVERSE_N_FIRST=1"; do
  t "ops, $s"
  env $s timeout 85 python3 tools/benchmark.py ops --providers comba comba_bidir --no-check --reps 20 --cuda-graph \
    --shapes 8,2048,16,128 32,1025,3,64 128,197,3,32,64 --out $OUT/ops_${s#COMBA_}.json 2>&1 | grep "^|" | tee -a $L
done
t done
