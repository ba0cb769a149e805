#!/bin/bash
# session 6 call 5 (nvidia-h200-x2, warm): tracker at global batch 256 (128 a GPU), 10 workers a process
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t tracker global batch 256
timeout 95 python3 tools/ddp_scaling.py --task tracker --make-synthetic-got10k /tmp/got --gpus 2 --epochs 2 --samples-per-epoch 6400 --global-batch 256 --workers 10 --out $OUT/trk_b256 2>&1 | grep -v "^\$" | tail -30 | tee -a $L
t done
rm -f $OUT/*/*/*.pth $OUT/*/*_2p.log
