#!/bin/bash
# session 11 call 1: GPU check of session 10's unverified fixes; per-kernel profile of the graphed Comba-T step at 1024 / 2048px
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t tests
timeout 230 python3 -m pytest -q -n 8 -p no:cacheprovider tests/test_bench.py tests/ops/test_mixer_fused.py tests/layers \
  tests/ops/test_bidirectional.py tests/ops/test_comba_ops.py -k "bench or mixer or layers or short_last or T197 or schema or one_launch or Block or Mixer" -rf 2>&1 | tail -8 | tee -a $L
t kname 1024
timeout 120 python3 .devdata/kname.py comba_tiny 1024 8 2>&1 | head -32 | tee $OUT/kname1024.txt | head -26 | tee -a $L
t kname 2048
timeout 120 python3 .devdata/kname.py comba_tiny 2048 2 2>&1 | head -32 | tee $OUT/kname2048.txt | head -26 | tee -a $L
t done
