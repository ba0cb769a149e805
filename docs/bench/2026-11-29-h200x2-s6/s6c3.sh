#!/bin/bash
# session 6 call 3 (nvidia-h200-x2): issue 8 with longer epochs (digits x10) and the faster tracker crops;
# then the ImageNet run with light augmentation (no RandAugment / erasing / colour jitter) to separate the
# GPUs' scaling from the host's augmentation CPU limit
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; lscpu | grep -E "^CPU\(s\)|Thread|Core|Socket|Model name"
 python3 -c "import torch,triton,timm;print(torch.__version__,triton.__version__,timm.__version__,torch.cuda.device_count(),torch.cuda.nccl.version())") 2>&1 | tee $L
t imagenet scaling
timeout 240 python3 tools/ddp_scaling.py --make-digits /tmp/digits224 --digits-copies 10 --gpus 2 --epochs 4 --global-batch 256 --workers 15 --out $OUT/in_scaling 2>&1 | grep -v "^\$" | tail -30 | tee -a $L
t tracker scaling
timeout 170 python3 tools/ddp_scaling.py --task tracker --make-synthetic-got10k /tmp/got --gpus 2 --epochs 3 --samples-per-epoch 6400 --global-batch 128 --workers 15 --out $OUT/trk_scaling 2>&1 | grep -v "^\$" | tail -30 | tee -a $L
left=$(( 570 - ($(date +%s)-T0) ))
t imagenet light augmentation left=$left
timeout $left python3 tools/ddp_scaling.py --data-dir /tmp/digits224 --gpus 2 --epochs 4 --global-batch 256 --workers 15 --out $OUT/in_light --aa null --reprob 0 --color-jitter 0 2>&1 | grep -v "^\$" | tail -30 | tee -a $L
t done
rm -f $OUT/*/*/*.pth; for d in $OUT/*/; do rm -f $d/*_2p.log; done
