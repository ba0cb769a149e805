export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=.
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
N=""; python3 -c "import xdist" 2>/dev/null && N="-n 8"
t tests
timeout 200 python3 -m pytest -q $N -p no:cacheprovider tests/ops/test_linear.py tests/layers tests/models/test_comba_vit.py \
  tests/ops/test_layer_norm.py tests/ops/test_mixer_joint.py -rf > $OUT/t_casts.txt 2>&1
tail -3 $OUT/t_casts.txt | tee -a $L
pkill -f pytest; sleep 1
for i in 1 2; do
  t graphed models run $i
  timeout 85 python3 tools/benchmark.py models --models comba_tiny deit_tiny_patch16_224 --img-size 1024 2048 --mode train \
    --cuda-graph --out $OUT/models_$i.json 2>&1 | grep "^| [0-9]\|rror" | tee -a $L
done
t profile 1024
timeout 80 python3 tools/benchmark.py models --models comba_tiny --img-size 1024 --mode train --cuda-graph \
  --profile --profile-top 60 --out $OUT/prof.json > $OUT/prof.txt 2>&1; grep "^| [0-9]\|rror\|profile:" $OUT/prof.txt | tee -a $L
t attr 1024
timeout 100 python3 .devdata/attr.py 1024 8 $OUT/attr1024.json > $OUT/attr1024.txt 2>&1; tail -1 $OUT/attr1024.txt | tee -a $L
t models 224
timeout 110 python3 tools/benchmark.py models --img-size 224 --mode train --cuda-graph --out $OUT/models_224.json 2>&1 \
  | grep "^| [0-9]\|rror" | tee -a $L
t done
