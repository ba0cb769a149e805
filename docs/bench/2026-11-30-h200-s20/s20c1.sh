#!/bin/bash
# prepared in session 19 for the next device session: COMBA_TRANSITION_FOLD (the transition walk's maps written by
# the blocked prepare and by _bwd_dv_local instead of _chunk_affine launches; "fwd" / "bwd" one of them; correct
# under the interpreter, untimed):
# the transition tests on the GPU (gpu-marked and not: test_transition_walk covers the fold), kernel times and
# errors with and without it, graphed Comba-T at 1024 / 2048px with it. Copy to .devdata/ and run with carry
# [".devdata", ".whl"].
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
N=""; python3 -c "import xdist" 2>/dev/null && N="-n 12"
t transition tests
timeout 180 python3 -m pytest -q $N -p no:cacheprovider tests/ops/test_comba_ops.py -k "transition or walk_mode or unwritten" -rf 2>&1 | grep -v "^  \|^$" | grep "passed\|failed\|FAIL\|Error" | tail -8 | tee -a $L
pkill -f pytest; sleep 1
t kernels fold 1
COMBA_TRANSITION_FOLD=1 timeout 110 python3 tools/benchmark.py kernels --shapes 8,4096,3,32,64 2,16384,3,32,64 \
  --out $OUT/kernels_fold1.json 2>&1 | grep "^| (\|rror" | tail -3 | tee -a $L
for f in 0 bwd fwd; do  # times only: the same kernels as "1"
  t kernels fold $f
  COMBA_TRANSITION_FOLD=$f timeout 50 python3 tools/benchmark.py kernels --no-check --shapes 8,4096,3,32,64 2,16384,3,32,64 \
    --out $OUT/kernels_fold$f.json 2>&1 | grep "^| (\|rror" | tail -3 | cut -c1-300 | tee -a $L
done
t graphed models fold 1
COMBA_TRANSITION_FOLD=1 timeout 80 python3 tools/benchmark.py models --models comba_tiny deit_tiny_patch16_224 --img-size 1024 2048 \
  --mode train --cuda-graph --out $OUT/models_fold1.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
t done
