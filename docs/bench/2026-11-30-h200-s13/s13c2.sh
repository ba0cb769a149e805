#!/bin/bash
# session 13 call 2: bf16 dot operands (COMBA_BF16_DOTS) per kernel and everywhere, the split gradient kernel at head
# size 32; kernel ms + accuracy against float64; graphed Comba models with bf16 dots everywhere
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
S="128:196:3:32:64 128:196:6:32:64 8:4097:3:32:64"
for v in "" all _bwd_grads _fwd_prepare_blocked,_fwd_prepare _bwd_state _fwd_state _bwd_dv_local; do
  t kchunk bf16 dots "$v"
  COMBA_BF16_DOTS=$v timeout 60 python3 .devdata/kchunk.py $S 2>&1 | grep -v Warn | tee -a $L
done
t split at 32
COMBA_SPLIT_BWD_MIN_BK=32 timeout 60 python3 .devdata/kchunk.py $S 2>&1 | grep -v Warn | tee -a $L
t models bf16 dots all
COMBA_BF16_DOTS=all timeout 60 python3 tools/benchmark.py models --models comba_tiny comba_small --img-size 224 --mode train --cuda-graph --out $OUT/m224_bf16dots.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
t done
