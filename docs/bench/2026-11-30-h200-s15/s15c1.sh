#!/bin/bash
# session 15 call 1: why the first graphed single-direction fwd+bwd capture fails; the LayerNorm backward with its
# loads hoisted / prefetched; the kernels of a graphed Comba-T step at 1024px
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a $L
for o in comba bidir_first bwd_only; do
  t capdiag $o
  timeout 100 python3 .devdata/capdiag.py $o 2>&1 | grep -v Warning | tail -40 | tee -a $L
done
t lnhoist
timeout 200 python3 .devdata/lnhoist.py 384 192 2>&1 | tail -12 | tee -a $L
t kname comba_tiny 1024 8
timeout 90 python3 .devdata/kname.py comba_tiny 1024 8 2>&1 | tail -41 > $OUT/kname_tiny_1024.txt; head -30 $OUT/kname_tiny_1024.txt | tee -a $L
t kname deit_tiny 1024 8
timeout 60 python3 .devdata/kname.py deit_tiny_patch16_224 1024 8 2>&1 | tail -41 > $OUT/kname_deit_1024.txt; head -14 $OUT/kname_deit_1024.txt | tee -a $L
t done
