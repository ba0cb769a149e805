export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=.
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
N=""; python3 -c "import xdist" 2>/dev/null && N="-n 8"
t tests
timeout 150 python3 -m pytest -q $N -p no:cacheprovider tests/ops/test_linear.py tests/layers tests/models/test_comba_vit.py \
  tests/ops/test_layer_norm.py -rf > $OUT/t_review.txt 2>&1
tail -2 $OUT/t_review.txt | tee -a $L
pkill -f pytest; sleep 1
t graphed 1024 2048
timeout 85 python3 tools/benchmark.py models --models comba_tiny deit_tiny_patch16_224 --img-size 1024 2048 --mode train \
  --cuda-graph --out $OUT/models.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
t done
