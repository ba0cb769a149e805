#!/bin/bash
# session 15 call 6: the benchmark CLI's first graphed forward+backward at (128, 197, 3, 64), without and with fla on the
# path (call 3 failed there with fla installed; the same sequence in capdiag4.py, without fla, passed)
export PYTHONPATH=. OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t without fla
timeout 90 python3 tools/benchmark.py ops --shapes 128,197,3,64 --providers comba --no-check --reps 20 --cuda-graph --out $OUT/a.json 2>&1 | grep "^|\|rror" | cut -c1-300 | tee -a $L
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit
export PYTHONPATH=.:/tmp/site
t with fla
timeout 90 python3 tools/benchmark.py ops --shapes 128,197,3,64 --providers comba --no-check --reps 20 --cuda-graph --out $OUT/b.json 2>&1 | grep "^|\|rror" | cut -c1-300 | tee -a $L
t with fla, twice the shape
timeout 90 python3 tools/benchmark.py ops --shapes 128,197,3,64 128,197,3,64 --providers comba sdpa --no-check --reps 20 --cuda-graph --out $OUT/c.json 2>&1 | grep "^|\|rror" | cut -c1-300 | tee -a $L
t done
