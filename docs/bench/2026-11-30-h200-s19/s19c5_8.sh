#!/bin/bash
# session 19, calls 5-8: graphed Comba-T at 1024 / 2048px with COMBA_TRANSITION_GROUP=G (the sed on the device set G: 8, 16, 8 again, 32)
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=.
COMBA_TRANSITION_GROUP=$G timeout 120 python3 tools/benchmark.py models --models comba_tiny deit_tiny_patch16_224 --img-size 1024 2048 --mode train --cuda-graph --out $OUT/models_g$G.json
