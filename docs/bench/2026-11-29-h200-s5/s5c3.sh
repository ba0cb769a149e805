#!/bin/bash
# session 5 call 3: models after the bf16-inputs fix: profile at 224, sizes 512-2048 with and without the memory switches, compiled 224
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t gpu tests layers/models
timeout 90 python3 -m pytest -q -p no:cacheprovider tests/layers tests/models -m gpu -rf 2>&1 | tail -3 | tee -a $L
timeout 60 python3 -m pytest -q -p no:cacheprovider tests/models -k cuda -rf 2>&1 | tail -2 | tee -a $L
t models 224 profile
timeout 150 python3 tools/benchmark.py models --img-size 224 --mode train --profile --out $OUT/models224.json 2>&1 | grep -v "^{" | tee -a $L
t models 512-2048
timeout 150 python3 tools/benchmark.py models --models comba_tiny deit_tiny_patch16_224 --img-size 512 1024 2048 --mode train --out $OUT/models_large.json 2>&1 | grep "^|" | tee -a $L
t models 512-2048 recompute
COMBA_RECOMPUTE_BUFFERS=1 timeout 100 python3 tools/benchmark.py models --models comba_tiny --img-size 224 512 1024 2048 --mode train --comba-kwargs '{"mixer_recompute": true}' --out $OUT/models_large_rc.json 2>&1 | grep "^|" | tee -a $L
left=$(( 570 - ($(date +%s)-T0) ))
t compiled left=$left
[ $left -gt 60 ] && timeout $left python3 tools/benchmark.py models --models comba_tiny deit_tiny_patch16_224 --img-size 224 --mode train --compile --out $OUT/models224_compiled.json 2>&1 | grep "^|\|rror" | tail -8 | tee -a $L
t done
