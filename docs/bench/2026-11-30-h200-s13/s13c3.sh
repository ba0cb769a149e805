#!/bin/bash
# session 13 call 3: bf16 dot operands on whole-chunk launches only (the 16-row tail launch of _bwd_grads hit an illegal
# address in call 2), per kernel and everywhere; launch options of _bwd_grads with bf16 dots; graphed Comba models
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
S="128:196:3:32:64 128:196:6:32:64 8:4097:3:32:64"
for v in _bwd_grads all; do
  t kchunk bf16 dots "$v"
  COMBA_BF16_DOTS=$v timeout 60 python3 .devdata/kchunk.py $S 2>&1 | grep -v Warn | tail -3 | tee -a $L
done
for c in 4:2 8:1 8:2 2:1; do
  t bf16 dots all, _bwd_grads $c
  COMBA_BF16_DOTS=all COMBA_KERNEL_CONFIG=_bwd_grads:32:$c timeout 40 python3 .devdata/kchunk.py 128:196:6:32:64 2>&1 | grep -v Warn | tail -1 | tee -a $L
done
t models bf16 dots all
COMBA_BF16_DOTS=all timeout 60 python3 tools/benchmark.py models --models comba_tiny comba_small --img-size 224 --mode train --cuda-graph --out $OUT/m224_bf16dots.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
t done
