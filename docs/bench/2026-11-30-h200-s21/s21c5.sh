export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=.
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
N=""; python3 -c "import xdist" 2>/dev/null && N="-n 8"
t tests
timeout 200 python3 -m pytest -q $N -p no:cacheprovider tests/ops/test_linear.py tests/layers tests/models/test_comba_vit.py \
  tests/ops/test_layer_norm.py tests/ops/test_mixer_joint.py tests/tracking -rf > $OUT/t_casts.txt 2>&1
tail -3 $OUT/t_casts.txt | tee -a $L
pkill -f pytest; sleep 1
t graphed models all sizes, one run
timeout 300 python3 tools/benchmark.py models --img-size 224 512 1024 2048 --mode train --cuda-graph \
  --out $OUT/models_all.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
t graphed 1024 2048 again
timeout 85 python3 tools/benchmark.py models --models comba_tiny deit_tiny_patch16_224 --img-size 1024 2048 --mode train \
  --cuda-graph --out $OUT/models_b.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
t done
