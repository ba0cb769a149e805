#!/bin/bash
# session 5 call 4: fused mixer kernels (prep + out, one input GEMM): GPU tests, models with/without, profile, large sizes, compiled
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t gpu tests
timeout 120 python3 -m pytest -q -n 4 -p no:cacheprovider tests/ops/test_mixer_fused.py tests/layers tests/ops/test_bidirectional.py -m gpu -rf 2>&1 | tail -3 | tee -a $L
timeout 80 python3 -m pytest -q -n 4 -p no:cacheprovider tests/models tests/ops/test_bidirectional.py -k "cuda or merges" -rf 2>&1 | tail -2 | tee -a $L
pkill -f pytest; sleep 1
t models 224 profile
timeout 110 python3 tools/benchmark.py models --img-size 224 --mode train --profile --out $OUT/models224.json 2>&1 | grep -v "^{" | grep -v Warn | tee -a $L
t fused off
COMBA_FUSED_MIXER=0 timeout 40 python3 tools/benchmark.py models --models comba_tiny --img-size 224 --mode train --out $OUT/models224_unfused.json 2>&1 | grep "^|" | tee -a $L
t large
timeout 60 python3 tools/benchmark.py models --models comba_tiny deit_tiny_patch16_224 --img-size 512 1024 2048 --mode train --out $OUT/models_large.json 2>&1 | grep "^|" | tee -a $L
COMBA_RECOMPUTE_BUFFERS=1 timeout 40 python3 tools/benchmark.py models --models comba_tiny --img-size 512 1024 2048 --mode train --comba-kwargs '{"mixer_recompute": true}' --out $OUT/models_large_rc.json 2>&1 | grep "^|" | tee -a $L
left=$(( 455 - ($(date +%s)-T0) ))
t compiled left=$left
[ $left -gt 60 ] && timeout $left python3 tools/benchmark.py models --models comba_tiny deit_tiny_patch16_224 --img-size 224 --mode train --compile --out $OUT/models224_compiled.json 2>&1 | grep "^|\|rror" | tail -8 | tee -a $L
t done
