export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=.
L=$OUT/log.txt; T0=$(date +%s); t() { echo "== t=$(( $(date +%s)-T0 )) $*" | tee -a $L; }
N=""; python3 -c "import xdist" 2>/dev/null && N="-n 8"
t torchrun tests on a one-GPU machine
timeout 150 python3 -m pytest -q -p no:cacheprovider "tests/tracking/test_train_tracker.py::test_torchrun_two_cpu_processes" \
  "tests/train/test_train_imagenet.py::test_torchrun_two_cpu_processes" tests/train/test_step.py -rf > $OUT/t_torchrun.txt 2>&1
tail -2 $OUT/t_torchrun.txt | tee -a $L
t gpu-marked suite
timeout 380 python3 -m pytest -q $N -p no:cacheprovider -m gpu tests -rf > $OUT/t_gpu.txt 2>&1
tail -4 $OUT/t_gpu.txt | tee -a $L
t done
