#!/bin/bash
# session 23 call 8: where the 1024px step's peak memory is, Comba-T and DeiT-T (peak.py: one eager step with the
# fused block kernels, the allocations replayed to the peak).
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=.
for m in comba_tiny deit_tiny_patch16_224; do
  cp .devdata/peak.py /tmp/peak.py; timeout 100 python3 /tmp/peak.py $m 1024 8 2>&1 | tail -32 | tee -a $OUT/log.txt
done
