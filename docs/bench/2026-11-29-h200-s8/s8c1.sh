#!/bin/bash
# session 8 call 1: GPU tests of the device-side NaN guard and the CUDA-graph training step; trainer throughput
# eager vs cuda_graph (Comba-T, DeiT-T) on a synthetic JPEG ImageFolder; profile of the graphed Comba-T step
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a $L
t gpu tests
timeout 200 python3 -m pytest -q -n 4 -p no:cacheprovider tests/train/test_step.py tests/test_bench.py -m gpu -k "not fla" -rf 2>&1 | grep -v "^  \|^$" | tail -15 | tee -a $L
pkill -f pytest; sleep 1
t synth
timeout 60 python3 .devdata/synth.py /tmp/synth 1280 50 2>&1 | tail -2 | tee -a $L
run() {  # name, extra args
  local name=$1; shift
  t train $name
  timeout 110 python3 tools/train_imagenet.py --config configs/comba_tiny_in1k.yaml --data-dir /tmp/synth --epochs 3 \
    --warmup-epochs 1 --workers 15 --output /tmp/o --experiment $name --log-interval 50 "$@" 2>&1 \
    | grep -i "epoch [0-9]/\|error\|Traceback\|parameters" | tee -a $L
  cp /tmp/o/$name/summary.csv $OUT/summary_$name.csv 2>/dev/null
}
run comba_eager
run comba_graph --cuda-graph
run deit_eager --model deit_tiny_patch16_224
run deit_graph --model deit_tiny_patch16_224 --cuda-graph
run comba_graph_light --cuda-graph --aa null --reprob 0 --color-jitter 0 --mixup 0 --cutmix 0
left=$(( 560 - ($(date +%s)-T0) ))
t profile left=$left
[ $left -gt 30 ] && timeout $left python3 tools/benchmark.py models --models comba_tiny --img-size 224 --mode train --cuda-graph --profile --profile-top 45 --out $OUT/m224_graph_prof.json 2>&1 | tail -60 | tee -a $L
t done
