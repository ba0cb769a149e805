#!/bin/bash
# session 15 call 3: the GPU capture test against the old capture (must fail), then ours, fla's chunk_comba and SDPA
# at the five image shapes in one graphed run (fla fully autotuned)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit
export PYTHONPATH=.:/tmp/site OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
python3 -c "import fla, triton, torch; print('fla', fla.__version__, 'triton', triton.__version__, 'torch', torch.__version__)" 2>&1 | tail -1 | tee -a $L
t test with the old capture, expect failures
cp comba_vision/cuda_graph.py /tmp/cg.py
sed -i 's/torch.cuda.graph(graph, stream=side, /torch.cuda.graph(graph, /' comba_vision/cuda_graph.py
grep -c "stream=side" comba_vision/cuda_graph.py | tee -a $L
timeout 100 python3 -m pytest -q tests/test_cuda_graph.py -m gpu 2>&1 | grep -i "passed\|failed\|Implicit" | tail -4 | tee -a $L
cp /tmp/cg.py comba_vision/cuda_graph.py
t ops graphed, image shapes, comba comba_bidir fla_comba sdpa
timeout 470 python3 tools/benchmark.py ops --shapes 128,197,3,64 128,197,6,64 32,1025,3,64 8,4097,3,64 2,16385,3,64 \
  --providers comba comba_bidir fla_comba sdpa --no-check --reps 20 --cuda-graph --out $OUT/ops_graph_fla.json 2>&1 \
  | grep "^|\|^{\|rror" | tee -a $L
t done
