#!/bin/bash
# session 19, last call: the transition walk's automatic groups (8 chunks at 64, 16 at 256): errors and kernel times
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=.
timeout 110 python3 tools/benchmark.py kernels --shapes 2,16384,3,32,64 8,4096,3,32,64 --out $OUT/kernels_auto.json 2>&1 | grep "^| (\|rror" | tail -3
