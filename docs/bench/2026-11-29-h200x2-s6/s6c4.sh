#!/bin/bash
# session 6 call 4 (nvidia-h200-x2): is the 2-GPU step host-bound at 128 images a GPU? Global batch 512
# (256 a GPU), light augmentation, 10 workers a process
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t imagenet light augmentation, global batch 512
timeout 165 python3 tools/ddp_scaling.py --make-digits /tmp/digits224 --digits-copies 10 --gpus 2 --epochs 2 --global-batch 512 --workers 10 --out $OUT/in_b512 --aa null --reprob 0 --color-jitter 0 2>&1 | grep -v "^\$" | tail -30 | tee -a $L
t done
rm -f $OUT/*/*/*.pth $OUT/*/*_2p.log
