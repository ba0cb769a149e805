#!/bin/bash
# session 6 call 1 (nvidia-h200-x2): issue 8, torchrun DDP scaling, ImageNet script then tracker
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; nvidia-smi topo -m; nproc
 python3 -c "import torch,triton,timm;print(torch.__version__,triton.__version__,timm.__version__,torch.cuda.device_count(),torch.cuda.nccl.version())") 2>&1 | tee $L
t imagenet scaling
timeout 300 python3 tools/ddp_scaling.py --make-digits /tmp/digits224 --gpus 2 --epochs 40 --global-batch 256 --workers 14 --out $OUT/in_scaling 2>&1 | tail -25 | tee -a $L
left=$(( 585 - ($(date +%s)-T0) ))
t tracker scaling left=$left
timeout $left python3 tools/ddp_scaling.py --task tracker --make-synthetic-got10k /tmp/got --gpus 2 --epochs 4 --samples-per-epoch 3200 --global-batch 64 --workers 14 --out $OUT/trk_scaling 2>&1 | tail -25 | tee -a $L
t done
