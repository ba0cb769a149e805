#!/bin/bash
# prepared in session 19, the second call of the next device session: the operator table (graphed, both
# directions, one direction, SDPA) with the session-19 defaults (the transition walk's new groups at 4097 and 16385
# were not timed there), then graphed Comba-T / Comba-S at 224px and Comba-T at 512px (no change expected: the
# transition walk runs only on long sequences)
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t ops graphed
timeout 200 python3 tools/benchmark.py ops --shapes 128,197,3,64 128,197,6,64 32,1025,3,64 8,4097,3,64 2,16385,3,64 \
  --providers comba comba_bidir sdpa --no-check --reps 20 --cuda-graph --out $OUT/ops_graph.json 2>&1 | grep "^|\|rror" | tee -a $L
t graphed models 224
timeout 120 python3 tools/benchmark.py models \
  --img-size 224 --mode train --cuda-graph --out $OUT/models_224.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
t graphed models 512
timeout 80 python3 tools/benchmark.py models --models comba_tiny deit_tiny_patch16_224 --img-size 512 \
  --mode train --cuda-graph --out $OUT/models_512.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
t done
