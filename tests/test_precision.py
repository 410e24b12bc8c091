"""The GPU's float32 matmul precision: full float32 by default (CuPy's default and PyTorch's), TF32 only
when TINYLLM_TF32 asks; the choice is in CUPY_TF32 before CuPy's first matmul reads it (CuPy reads it
once). Shown in a fresh process, with the real CuPy (no driver here: the probe falls back) and with the
simulated one; a CUPY_TF32=1 left in the environment does not turn TF32 on behind tinyllm's back."""
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
CODE = """
import os, sys, tinyllm
before = "cupy" in sys.modules
tinyllm.device("cuda")
print(before, os.environ.get("CUPY_TF32"))
"""


@pytest.mark.parametrize("simulated", ["0", "1"])
@pytest.mark.parametrize("tf32,want", [(None, "0"), ("0", "0"), ("off", "0"), ("1", "1"), ("on", "1")])
def test_float32_matmuls_are_full_precision_unless_tf32_is_asked(tf32, want, simulated):
    env = {k: v for k, v in os.environ.items() if k != "TINYLLM_TF32"}
    env.update(PYTHONPATH=str(ROOT), CUPY_TF32="1", TINYLLM_CUDA_SIM=simulated)
    if tf32 is not None:
        env["TINYLLM_TF32"] = tf32
    r = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", want]  # CuPy not imported before the choice is written
