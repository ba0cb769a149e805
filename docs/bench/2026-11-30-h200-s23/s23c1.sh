#!/bin/bash
# prepared in session 22 for the next device session. (1) The review fixes after session 22's last GPU call (no
# zero-filled gradients for the norms' kept x^ and rstd: a memset per norm per step less; x^ only with a backward to
# come) on the GPU: their tests, and graphed Comba-T against DeiT-T at 1024 / 2048px against call 6's 436.1 / 106.3.
# (2) Why the conv inside the prep kernels (COMBA_CONV_IN_PREP=1) is 3% slower than the conv and prep kernels apart:
# a profiled step each way at 1024px, the prep and conv kernels' device times side by side. Copy to .devdata/ and
# run with carry [".devdata", ".whl"] (about 250 s).
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=. NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
t tests
timeout 150 python3 -m pytest -q -p no:cacheprovider -n 8 tests/ops/test_layer_norm.py tests/ops/test_linear.py \
  tests/ops/test_mixer_fused.py tests/layers tests/models/test_comba_vit.py -rf > $OUT/tests.txt 2>&1
grep -E "passed|failed|FAILED|Error" $OUT/tests.txt | tail -8 | tee -a $L
M="python3 tools/benchmark.py models --mode train --cuda-graph"
t models 1024 2048, the defaults
timeout 100 $M --models comba_tiny deit_tiny_patch16_224 --img-size 1024 2048 --out /tmp/m.json 2>&1 \
  | grep "^| [0-9]\|rror" | tee -a $L
for mode in 0 1; do
  t profile 1024: COMBA_CONV_IN_PREP=$mode
  # eager step with every fused block kernel forced on (in eager mode they apply only inside the package's graphs)
  COMBA_FUSED_NORM=1 COMBA_FUSED_LINEAR=1 COMBA_FUSED_CONV=1 COMBA_CONV_IN_PREP=$mode timeout 120 \
    python3 tools/benchmark.py models --mode train --models comba_tiny \
    --img-size 1024 --profile --profile-top 30 --out /tmp/p.json > $OUT/profile_conv$mode.txt 2>&1
  grep -iE "prep|dw_|_out_|ln_|gelu|device|launch" $OUT/profile_conv$mode.txt | head -30 | tee -a $L
done
t done
