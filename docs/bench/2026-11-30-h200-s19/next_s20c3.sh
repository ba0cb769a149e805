#!/bin/bash
# prepared in session 19, a third call for the next device session: launch options of the transition walk's kernels
# (defaults: 4 warps, Triton's stages) at the models' long shapes, kernel times only (--no-check: no float64
# reference), one process per variant; only the named kernels take the variant's options
# Run after next_s20c1.sh; drop COMBA_TRANSITION_FOLD=1 below if that call did not adopt the fold.
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=.
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
i=0
for v in "" "_affine_scan:32:2:3" "_affine_scan:32:1:3" "_affine_scan:32:4:1" "_affine_scan:32:8:3" \
         "_chunk_affine:32:2:1,_bwd_complete:32:2:1" "_chunk_affine:32:8:1,_bwd_complete:32:8:1" \
         "_state_carry:32:2:1" "_bwd_dv_local_affine:32:8:1"; do
  i=$((i+1)); t variant $i "$v"
  COMBA_TRANSITION_FOLD=1 COMBA_KERNEL_CONFIG="$v" timeout 60 python3 tools/benchmark.py kernels --no-check \
    --shapes 8,4096,3,32,64 2,16384,3,32,64 --out $OUT/kv_$i.json 2>&1 | grep "^| (\|rror" | tail -2 | cut -c1-400 | tee -a $L
done
t done
