#!/usr/bin/env bash
# The whole GPU check in one call, for a lent CUDA machine (offline, Python 3.12, CuPy preinstalled).
# Here first: ../shared/tools/gpu-wheels .wheels   (the wheels the offline machine lacks; .wheels is git-ignored)
# There:      DATA=.wheels/tinyshakespeare.txt bash scripts/gpu_check.sh  (copy the text into .wheels and carry it; results under $OUT)
set -uo pipefail
out=${OUT:-gpu-out}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .wheels/*.whl && export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 -c "import cupy, tinyllm; print('cupy', cupy.__version__, '->', tinyllm.device('cuda', fallback=False))" | tee -a "$out/gpu.txt"
# 1. the test suite on the cuda backend (plus cpu as a control)
TINYLLM_BACKENDS=cuda,cpu python3 -m pytest -q -rs -m "not slow" 2>&1 | tee "$out/pytest-cuda.txt" | tail -15
# 2. nanoGPT's shakespeare GPU recipe for a few hundred steps
python3 -m tinyllm train --device cuda --data "${DATA:-../shared/data/tinyshakespeare.txt}" --model gpt \
  --n-layer 6 --n-head 6 --n-embd 384 --block-size 256 --batch-size 64 --dropout 0.2 \
  --steps 300 --eval-interval 100 --eval-iters 20 --lr 1e-3 --out "$out/run" 2>&1 | tee "$out/train-cuda.txt" | tail -15
# 3. the benchmark preset against PyTorch CUDA
python3 scripts/bench.py --preset gpu-baby --device cuda --json "$out/bench-gpu.json" 2>&1 | tee "$out/bench-gpu.txt" | tail -25
