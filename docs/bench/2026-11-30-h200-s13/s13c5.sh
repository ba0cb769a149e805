#!/bin/bash
# session 13 call 5: parts of _bwd_grads on bf16 operands (COMBA_GRADS_BF16 vb / kw / cc); launch-option sweep with the
# bf16 products; graphed Comba models per variant
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
for v in cc kw vb; do
  t kchunk grads bf16 $v
  COMBA_GRADS_BF16=$v timeout 45 python3 .devdata/kchunk.py 128:196:3:32:64 128:196:6:32:64 2>&1 | grep -v Warn | tail -2 | tee -a $L
done
for v in cc kw vb; do
  t models grads bf16 $v
  COMBA_GRADS_BF16=$v timeout 45 python3 tools/benchmark.py models --models comba_tiny comba_small --img-size 224 --mode train --cuda-graph --out $OUT/m224_$v.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
done
t sweep
timeout 150 python3 tools/benchmark.py sweep --shapes 256,196,6,32,64 --out $OUT/sweep.json 2>&1 | grep -v Warn | cut -c1-400 | tee -a $L
t done
