#!/bin/bash
# session 12 call 1: GPU check of session 11's unverified commits (carry tf32x3 in bf16, _walk_start, new grouped tests); fresh per-kernel profiles at 224
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t tests
timeout 200 python3 -m pytest -q -n 8 -p no:cacheprovider tests/ops/test_comba_ops.py tests/ops/test_bidirectional.py tests/ops/test_mixer_fused.py -k "grouped or group_choice or 2100 or T197 or short_last or one_launch or mixer_scan or recomputed" -rf 2>&1 | tail -4 | tee -a $L
pkill -f pytest; sleep 1
for m in comba_tiny comba_small deit_small_patch16_224; do
t kname $m
timeout 80 python3 .devdata/kname.py $m 224 128 > $OUT/kname_${m}.txt 2>&1; head -30 $OUT/kname_${m}.txt | cut -c1-160 | tee -a $L
done
t done
