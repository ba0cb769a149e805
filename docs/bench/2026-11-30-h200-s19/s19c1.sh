#!/bin/bash
# prepared in session 18 for the next device session: the 32-position chunks (COMBA_CHUNK_SIZE=32, correct under the
# interpreter) on the H200: their GPU tests, kernel times and errors at the models' and the issue's shapes, then the
# graphed models A/B against the default 64 in one call. Copy to .devdata/ and run with carry [".devdata", ".whl"].
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
N=""; python3 -c "import xdist" 2>/dev/null && N="-n 12"
t gpu tests chunk 32
COMBA_CHUNK_SIZE=32 timeout 200 python3 -m pytest -q $N -p no:cacheprovider tests/ops/test_comba_ops.py -m gpu -rf 2>&1 | grep -v "^  \|^$" | grep "passed\|failed\|FAIL\|Error" | tail -8 | tee -a $L
pkill -f pytest; sleep 1
t kernels chunk 32
COMBA_CHUNK_SIZE=32 timeout 120 python3 tools/benchmark.py kernels --shapes 128,196,3,32,64 8,4096,3,32,64 128,197,3,64 32,1025,3,64 \
  --out $OUT/kernels_c32.json 2>&1 | grep "^| (\|rror" | tail -5 | tee -a $L
for c in 32 64; do
  t graphed models chunk $c
  COMBA_CHUNK_SIZE=$c timeout 100 python3 tools/benchmark.py models --models comba_tiny deit_tiny_patch16_224 --img-size 224 1024 2048 \
    --mode train --cuda-graph --out $OUT/models_c$c.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
done
t done
