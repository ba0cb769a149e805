#!/bin/bash
# session 14 call 4: the mixer between its projections as one autograd node (ops.mixer_joint: no concatenation of
# the joint projection's gradient): GPU tests; graphed models 224 (joint on / off for the Comba models); 1024 / 2048
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t tests
timeout 110 python3 -m pytest -q -n 8 -p no:cacheprovider tests/ops/test_mixer_joint.py tests/ops/test_dwconv.py tests/ops/test_mixer_fused.py tests/models/test_comba_vit.py -k "cuda or gpu or joint or bf16" -rf 2>&1 | tail -3 | tee -a $L
pkill -f pytest; sleep 1
t graphed 224
timeout 110 python3 tools/benchmark.py models --img-size 224 --mode train --cuda-graph --out $OUT/m224_graph.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
t graphed 224 joint off
COMBA_MIXER_JOINT=0 timeout 50 python3 tools/benchmark.py models --models comba_tiny comba_small --img-size 224 --mode train --cuda-graph --out $OUT/m224_nojoint.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
t sizes
timeout 80 python3 tools/benchmark.py models --models comba_tiny deit_tiny_patch16_224 --img-size 1024 2048 --mode train --cuda-graph --out $OUT/msizes_graph.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
t kname comba_small
timeout 40 python3 .devdata/kname.py comba_small 2>&1 | grep -v Warn | cut -c1-140 | head -42 > $OUT/kname_comba_small.txt; head -3 $OUT/kname_comba_small.txt | tee -a $L
t done
