export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. COMBA_BRANCH_BIAS_IN_NORM=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t attr 1024
timeout 150 python3 .devdata/attr.py 1024 8 $OUT/attr1024.json > $OUT/attr1024.txt 2>&1; tail -2 $OUT/attr1024.txt | tee -a $L
t prof 2048 and 1024 graphed BB
timeout 120 python3 tools/benchmark.py models --models comba_tiny --img-size 1024 2048 --mode train --cuda-graph \
  --profile --profile-top 60 --out $OUT/prof_bb.json > $OUT/prof_bb.txt 2>&1; grep "^| [0-9]\|rror" $OUT/prof_bb.txt | tee -a $L
t done
