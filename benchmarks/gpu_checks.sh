#!/usr/bin/env bash
# GPU checks in one go (run from the repository root on a machine with an NVIDIA GPU and JAX's
# CUDA build). Wheels for packages missing there (ml_collections, brax, mujoco, ...) may be put in
# .whl/ beforehand. Writes each log to ${OUT:-/tmp/gpu_checks}/.
set -u
OUT=${OUT:-/tmp/gpu_checks}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
nvidia-smi -L
python3 -c "import jax; print('jax', jax.__version__, jax.devices())"
step() { local name=$1 limit=$2; shift 2; echo "=== $name"; local t0=$SECONDS
  timeout "$limit" "$@" > "$OUT/$name.txt" 2>&1; local rc=$?
  tail -n 25 "$OUT/$name.txt"; echo "=== $name: rc=$rc, $((SECONDS - t0)) s"; }
step sinusoid_throughput 300 python3 benchmarks/sinusoid_throughput.py --steps 200 --meta-batches 25,1000,10000,30000
step sinusoid_quick 150 python3 -m omni_jax.cli sinusoid --quick --no-progress --workdir /tmp/sin_quick
step rl_throughput 180 python3 benchmarks/rl_throughput.py --paper
step classification_throughput 150 python3 benchmarks/classification_throughput.py --backbone resnet12 --image-size 84 --channels 3
