#!/usr/bin/env bash
# The whole GPU check in one call, on a bare GPU box (an NVIDIA driver, python3 >= 3.10 and pip's index):
#
#   bash scripts/gpu_check.sh             # from the tree's root or anywhere; results in gpu-out/ (OUT=dir)
#   bash scripts/gpu_check.sh --dry-run   # every step on a machine without a GPU: CI runs it
#
# It makes its own virtual environment (.venv-gpu) with tinyllm[cuda12,test,cuda-dev] (CuPy, the CUDA
# libraries it loads, NVRTC); offline, carry the wheels in .wheels/ (pip download -d .wheels
# ".[cuda12,test,cuda-dev]" on a machine with a network). Neither torch nor transformers is needed. CuPy's
# compiled kernels are kept in .gpu-check/cupy-cache (CUPY_CACHE_DIR), so each step after the first compiles
# nothing again, and a second run nothing at all.
#
# Steps (the first failure stops it: exit 1, `FAILED: <step>: <why>` the last line of OUT/summary.txt):
#   0. the environment: the venv and its install
#   1. the GPU answers: nvidia-smi, and tinyllm.device("cuda", fallback=False)
#   2. the CUDA rows of the suite (-k cuda, TINYLLM_BACKENDS=cuda); a cuda test skipped because the CUDA
#      backend is unusable (the conftest's "cuda backend skipped: ...") fails the check; one skipped for
#      another reason (no torch, a test for machines without a GPU) is counted, not failed
#   3. nanoGPT's Shakespeare GPU recipe (6 x 384, block 256, batch 64, dropout 0.2) for 300 steps through
#      `tinyllm train --device cuda`, with the host <-> device transfer counts
#   4. the gpu-baby benchmark at 1 thread (tinyllm alone; warm-up steps untimed)
#   5. launches per step (scripts/bench/launches.py, the simulated CuPy: needs g++) and every kernel
#      compiled for sm_80 and sm_90 by NVRTC (scripts/compile_kernels.py)
# 480 s in all: each step has its share (SHARE below) plus what the steps before it left unused, and is
# stopped when that runs out. OUT holds at most 8 files: summary.txt gpu.txt pytest-cuda.txt
# train-cuda.txt train-log.jsonl bench-gpu.json bench-gpu.txt kernels.txt.
#
# --dry-run: the same steps against the simulated CuPy (TINYLLM_CUDA_SIM=1, the kernels' own source run on
# the CPU), in the Python environment that runs it (no venv, no pip), at tiny sizes (the simulation is slow).
set -uo pipefail
cd "$(dirname "$0")/.."
dry=0
case "${1:-}" in
  --dry-run) dry=1 ;;
  "") ;;
  *) echo "usage: bash scripts/gpu_check.sh [--dry-run]" >&2; exit 2 ;;
esac
out=${OUT:-gpu-out}
work=$PWD/.gpu-check
mkdir -p "$out" "$work" || exit 1
summary=$out/summary.txt
(cd "$out" && rm -f summary.txt gpu.txt pytest-cuda.txt train-cuda.txt train-log.jsonl bench-gpu.json \
  bench-gpu.txt kernels.txt)
: > "$summary"
export PYTHONUNBUFFERED=1 CUPY_CACHE_DIR=$work/cupy-cache PIP_DISABLE_PIP_VERSION_CHECK=1
py=${PYTHON:-python}  # the venv's, once made; PYTHON=... with GPU_CHECK_ENV=current or --dry-run
command -v "$py" >/dev/null || py=python3
[ "$dry" = 1 ] && export TINYLLM_CUDA_SIM=1

# seconds each step may take; their sum is the whole check's 480 (GPU_CHECK_SECONDS: less, to test the script)
declare -A SHARE=([env]=150 [gpu]=30 [tests]=120 [train]=90 [bench]=55 [kernels]=35)
total=${GPU_CHECK_SECONDS:-480}
ORDER=(env gpu tests train bench kernels)
start=$SECONDS
step=""

# A step starts with its FAILED line already written, so that the summary ends with a line naming the step
# even if the check is killed (SIGKILL too); what the step says goes above that line, and its end replaces it.
pending=""
say() {
  [ -n "$pending" ] && sed -i '$d' "$summary"
  echo "$*" | tee -a "$summary"
  [ -n "$pending" ] && echo "$pending" >> "$summary"
  return 0
}
begin() { step=$1; say "== $2"; pending="FAILED: $step (did not finish: the check was stopped)"; echo "$pending" >> "$summary"; }
passed() { [ -n "$pending" ] && sed -i '$d' "$summary"; pending=""; }
fail() { passed; say "FAILED: $step: $*"; exit 1; }
stopped() { passed; say "FAILED: $step: stopped by SIG$1 after $((SECONDS - start)) s"; exit 1; }
for s in TERM INT HUP; do trap "stopped $s" "$s"; done

budget() {  # seconds left for this step: the total left, less the shares of the steps after it
  local later=0 seen=0 k
  for k in "${ORDER[@]}"; do
    [ "$seen" = 1 ] && later=$((later + SHARE[$k]))
    [ "$k" = "$step" ] && seen=1
  done
  local n=$((total - (SECONDS - start) - later))
  [ "$n" -gt 0 ] && echo "$n" || echo 1
}
run() {  # run "$@" under the step's budget; on a time-out, fail naming it
  local t
  t=$(budget)
  timeout -k 5 "$t" "$@"
  local rc=$?
  [ "$rc" = 124 ] && fail "timed out after $t s"
  [ "$rc" = 137 ] && fail "killed (timed out after $t s, or out of memory)"
  return "$rc"
}

begin env "0. environment ($(date -u +%FT%TZ))"
if [ "$dry" = 1 ]; then
  passed
  say "dry run: the simulated CuPy (TINYLLM_CUDA_SIM=1) and this Python: $(command -v $py)"
elif [ "${GPU_CHECK_ENV:-}" = current ]; then  # the active Python as it is (tests of this script)
  passed
else
  if [ ! -x .venv-gpu/bin/python ]; then
    run python3 -m venv .venv-gpu || fail "python3 -m venv (install python3-venv)"
  fi
  . .venv-gpu/bin/activate
  py=python
  pip_from=()
  if ls .wheels/*.whl >/dev/null 2>&1; then pip_from=(--no-index --find-links .wheels); fi
  run pip install -q --progress-bar off "${pip_from[@]}" -e ".[cuda12,test,cuda-dev]" >"$work/pip.txt" 2>&1 \
    || { say "$(tail -5 "$work/pip.txt")"; fail "pip install -e .[cuda12,test,cuda-dev] (its last lines above)"; }
  passed
  say "pip install -e .[cuda12,test,cuda-dev]: $((SECONDS - start)) s"
fi

begin gpu "1. the GPU answers"
{
  if [ "$dry" = 1 ]; then echo "nvidia-smi: not run (dry run)"; else
    run nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv; fi \
  && run $py -c "import tinyllm; from backends.cuda.backend import cupy_modules; cp = cupy_modules()[0]
print(cp.__name__, cp.__version__, '->', tinyllm.device('cuda', fallback=False))"
} >"$out/gpu.txt" 2>&1 || { cat "$out/gpu.txt"; fail "the GPU is not usable (see $out/gpu.txt)"; }
passed
say "$(cat "$out/gpu.txt")"

begin tests "2. the CUDA rows of the suite (-k cuda, TINYLLM_BACKENDS=cuda)"
backends=cuda  # and torch's CUDA rows where a torch with CUDA is installed (the check itself installs none)
if [ "$dry" != 1 ] && $py -c "import torch, sys; sys.exit(not torch.cuda.is_available())" >/dev/null 2>&1; then
  backends=cuda,torch:cuda
fi
TINYLLM_BACKENDS=$backends run $py -m pytest -q -rs -k cuda -p no:cacheprovider --junitxml="$work/pytest.xml" \
  >"$out/pytest-cuda.txt" 2>&1 || { tail -15 "$out/pytest-cuda.txt"; fail "tests failed (see $out/pytest-cuda.txt)"; }
gate=$($py - "$work/pytest.xml" <<'EOF'
import sys
import xml.etree.ElementTree as ET

UNUSABLE = "cuda backend skipped"  # tests/conftest.py's reason when the CUDA backend cannot be used
cases = list(ET.parse(sys.argv[1]).iter("testcase"))
skips = [(c, c.find("skipped")) for c in cases if c.find("skipped") is not None]
unusable = [c.get("name") for c, s in skips if UNUSABLE in (s.get("message") or "")]
print(f"cuda tests: {len(cases) - len(skips)} ran, {len(skips) - len(unusable)} skipped for other reasons "
      f"(not counted), {len(unusable)} skipped because the CUDA backend is unusable")
if unusable or len(cases) == len(skips):
    print("the CUDA backend must run these:", ", ".join(unusable[:5]) or "no cuda test ran")
    sys.exit(1)
EOF
) || { echo "$gate"; fail "$(echo "$gate" | tail -1)"; }
passed
say "$gate"

begin train "3. nanoGPT's Shakespeare GPU recipe through tinyllm train --device cuda"
if [ "$dry" = 1 ]; then
  steps=20; size=(--n-layer 2 --n-head 2 --n-embd 32 --block-size 32 --batch-size 4 --eval-interval 10 --eval-iters 2)
else
  steps=300; size=(--n-layer 6 --n-head 6 --n-embd 384 --block-size 256 --batch-size 64 --eval-interval 100 --eval-iters 20)
fi
rm -rf "$work/run"
run $py -m tinyllm train --device cuda --data data/tinyshakespeare.txt --model gpt "${size[@]}" --dropout 0.2 \
  --bias --steps "$steps" --lr 1e-3 --samples 1 --transfer-stats --out "$work/run" >"$out/train-cuda.txt" 2>&1 \
  || { tail -5 "$out/train-cuda.txt"; fail "training (see $out/train-cuda.txt)"; }
cp "$work/run/log.jsonl" "$out/train-log.jsonl"
head -1 "$out/train-cuda.txt" | grep -q "^device cuda" \
  || fail "training did not run on the GPU: $(head -1 "$out/train-cuda.txt")"
passed
say "$(grep -E "^step $steps/$steps|^host|^  (step|log|eval|checkpoint) " "$out/train-cuda.txt")"

begin bench "4. the gpu-baby benchmark, 1 thread"
if [ "$dry" = 1 ]; then
  size=(--batch 2 --block 16 --n-layer 2 --steps 3 --warmup 1 --profile-steps 1 --mem-steps 1 --sample-tokens 5)
else
  size=(--steps 30 --warmup 3 --profile-steps 5 --mem-steps 3 --sample-tokens 100)
fi
run $py scripts/bench/bench.py --preset gpu-baby --device cuda --threads 1 --no-torch "${size[@]}" --json \
  >"$out/bench-gpu.json" 2>"$out/bench-gpu.txt" || { tail -5 "$out/bench-gpu.txt"; fail "benchmark (see $out/bench-gpu.txt)"; }
line=$($py -c "
import json, sys
r = json.load(open(sys.argv[1]))['runs'][0]
t = r['tinyllm']
print(f\"{r['device']}: {t['ms_median']:.1f} ms/step (median of {t['steps']} after the warm-up), {t['tokens_per_s']:,.0f} tok/s\")
" "$out/bench-gpu.json" 2>>"$out/bench-gpu.txt") || fail "the benchmark's report (see $out/bench-gpu.txt)"
passed
say "$line"

begin kernels "5. launches per step, and the kernels compiled for sm_80 and sm_90"
{
  if [ "$dry" = 1 ] || command -v "${CXX:-g++}" >/dev/null || command -v c++ >/dev/null; then
    run $py scripts/bench/launches.py
  else
    echo "launches per step: not counted here (no g++ to run the simulated CuPy; CI's dry run counts them)"
  fi && run $py scripts/compile_kernels.py
} >"$out/kernels.txt" 2>&1 || { tail -5 "$out/kernels.txt"; fail "launches or kernels (see $out/kernels.txt)"; }
passed
say "$(grep -E "^launches per step|^kernels compiled" "$out/kernels.txt")"

say "PASSED: every step, in $((SECONDS - start)) s; results in $out/"
