#!/usr/bin/env bash
# The whole GPU check in one call, on a bare GPU box (an NVIDIA driver and python3 >= 3.10, nothing else):
#
#   bash scripts/gpu_check.sh           # from the tree's root or anywhere; results in gpu-out/ (OUT=dir)
#
# It makes its own virtual environment (.venv-gpu) with tinyllm[cuda12,test] (CuPy and the CUDA libraries it
# loads); offline, carry the wheels in .wheels/ (pip download -d .wheels ".[cuda12,test]" on a machine with a
# network) and they are used instead. Its data travels in the tree (data/tinyshakespeare.txt).
#
# Steps, within 10 minutes in all (each gets the time left; running out is a failure); the first failure
# stops it (exit 1, the step named on the last line of OUT/summary.txt):
#   1. the GPU answers: nvidia-smi, and tinyllm.device("cuda", fallback=False)
#   2. the test suite on the cuda backend (cpu beside it as a control); a cuda test that skips is a failure
#   3. nanoGPT's Shakespeare GPU recipe (6 x 384, block 256, batch 64, dropout 0.2) for 300 steps through
#      `tinyllm train --device cuda`, with the host <-> device transfer counts
#   4. the gpu-baby benchmark against PyTorch CUDA (PyTorch only if installed)
# OUT holds at most 7 files: summary.txt gpu.txt pytest-cuda.txt train-cuda.txt train-log.jsonl bench-gpu.json
# bench-gpu.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-out}
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export PYTHONUNBUFFERED=1
: > "$out/summary.txt"

say() { echo "$*" | tee -a "$out/summary.txt"; }
fail() { say "FAILED: $*"; exit 1; }
deadline=$((SECONDS + 600))
left() {  # seconds left of the 10 minutes (a step given none fails as timed out)
  local n=$((deadline - SECONDS))
  [ "$n" -gt 0 ] && echo "$n" || echo 1
}

say "== 0. environment ($(date -u +%FT%TZ))"
if [ "${GPU_CHECK_ENV:-}" = current ]; then  # use the active Python as it is (tests of this script)
  :
else
if [ ! -x .venv-gpu/bin/python ]; then
  python3 -m venv .venv-gpu || fail "python3 -m venv (install python3-venv)"
fi
. .venv-gpu/bin/activate
if ls .wheels/*.whl >/dev/null 2>&1; then
  pip_from=(--no-index --find-links .wheels)
else
  pip_from=()
fi
timeout "$(left)" pip install -q "${pip_from[@]}" -e ".[cuda12,test]" >"$work/pip.txt" 2>&1 \
  || { tail -5 "$work/pip.txt" | tee -a "$out/summary.txt"; fail "pip install -e .[cuda12,test]"; }
fi

say "== 1. the GPU answers"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv \
  && python -c "import cupy, tinyllm; print('cupy', cupy.__version__, '->', tinyllm.device('cuda', fallback=False))"; \
} >"$out/gpu.txt" 2>&1 || { cat "$out/gpu.txt"; fail "the GPU is not usable (see $out/gpu.txt)"; }
cat "$out/gpu.txt"

say "== 2. the test suite on cuda (cpu beside it)"
TINYLLM_BACKENDS=cuda,cpu timeout "$(left)" python -m pytest -q -rs -m "not slow" -p no:cacheprovider \
  --junitxml="$work/pytest.xml" >"$out/pytest-cuda.txt" 2>&1 || { tail -15 "$out/pytest-cuda.txt"; fail "tests (see $out/pytest-cuda.txt)"; }
python - "$work/pytest.xml" >"$work/cuda-tests.txt" <<'EOF' || { cat "$work/cuda-tests.txt"; fail "cuda tests skipped or missing"; }
import sys
import xml.etree.ElementTree as ET

cases = [c for c in ET.parse(sys.argv[1]).iter("testcase") if "[cuda" in c.get("name", "")]
skipped = [c.get("name") for c in cases if c.find("skipped") is not None]
print(f"cuda tests: {len(cases)} run, {len(skipped)} skipped")
if not cases or skipped:
    print("cuda tests must run, not skip:", ", ".join(skipped[:5]) or "none collected")
    sys.exit(1)
EOF
say "$(cat "$work/cuda-tests.txt")"

say "== 3. nanoGPT's Shakespeare GPU recipe, 300 steps"
timeout "$(left)" python -m tinyllm train --device cuda --data data/tinyshakespeare.txt --model gpt \
  --n-layer 6 --n-head 6 --n-embd 384 --block-size 256 --batch-size 64 --dropout 0.2 --bias \
  --steps 300 --eval-interval 100 --eval-iters 20 --lr 1e-3 --samples 1 --transfer-stats \
  --out "$work/run" >"$out/train-cuda.txt" 2>&1 || { tail -5 "$out/train-cuda.txt"; fail "training (see $out/train-cuda.txt)"; }
cp "$work/run/log.jsonl" "$out/train-log.jsonl"
head -1 "$out/train-cuda.txt" | grep -q "^device cuda" || fail "training did not run on the GPU: $(head -1 "$out/train-cuda.txt")"
grep -E "^step 300/300|^host|^  (step|log|eval|checkpoint) " "$out/train-cuda.txt" | tee -a "$out/summary.txt"

say "== 4. the gpu-baby benchmark"
timeout "$(left)" python scripts/bench/bench.py --preset gpu-baby --device cuda --json >"$out/bench-gpu.json" 2>"$out/bench-gpu.txt" \
  || { tail -5 "$out/bench-gpu.txt"; fail "benchmark (see $out/bench-gpu.txt)"; }
python -c "import json, sys; r = json.load(open(sys.argv[1])); print(json.dumps(r, indent=1)[:1500])" "$out/bench-gpu.json" >>"$out/bench-gpu.txt"
say "all steps passed; results in $out/"
