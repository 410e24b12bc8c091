"""The environment variables: one table (backends/env.py, shown in docs/env.md) and one rule for
a flag, which every TINYLLM_ flag follows: unset, empty, 0, false, no or off is off."""
import os
import pathlib
import re
import subprocess
import sys

import pytest

from backends import env

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("value,on", [
    ("", False), ("0", False), ("false", False), ("no", False), ("off", False), ("OFF", False), (" False ", False),
    ("1", True), ("yes", True), ("true", True), ("on", True), ("2", True)])
def test_a_flag_is_off_for_empty_0_false_no_off(monkeypatch, value, on):
    monkeypatch.setenv("TINYLLM_NO_JIT", value)
    assert env.flag("TINYLLM_NO_JIT") is on


def test_an_unset_flag_takes_the_callers_default(monkeypatch):
    monkeypatch.delenv("TINYLLM_CUDA_AWARE_MPI", raising=False)
    assert env.flag("TINYLLM_CUDA_AWARE_MPI") is False
    assert env.flag("TINYLLM_CUDA_AWARE_MPI", unset=None) is None
    monkeypatch.delenv("TINYLLM_DIST", raising=False)
    assert env.setting("TINYLLM_DIST") == "auto"


def test_a_variable_missing_from_the_table_is_refused():
    with pytest.raises(KeyError, match="backends/env.py"):
        env.flag("TINYLLM_NOT_A_FLAG")


def test_docs_env_md_shows_the_table():
    assert env.markdown_table() in (ROOT / "docs" / "env.md").read_text()


def test_every_tinyllm_variable_the_code_reads_is_in_the_table():
    read = set()
    for d in ("backends", "tinyllm", "scripts", "tests"):
        for p in (ROOT / d).rglob("*.py"):
            read |= set(re.findall(r"\bTINYLLM_[A-Z_]+\b", p.read_text()))
    read -= {"TINYLLM_NOT_A_FLAG"}  # this file's example of one that is not
    assert read <= set(env.TABLE), sorted(read - set(env.TABLE))


SAYS = """
from backends.cpu import mkl
from backends.cpu.jit import jit_loops
print(mkl.why_not() or "used", jit_loops() is not None)
"""


@pytest.mark.parametrize("value", ["0", "off", "false", ""])
def test_no_mkl_and_no_jit_set_to_an_off_value_turn_nothing_off(value):
    """TINYLLM_NO_MKL=0 used to turn MKL off (any value did) while TINYLLM_NO_JIT=0 kept the JIT."""
    run = dict(os.environ, TINYLLM_NO_MKL=value, TINYLLM_NO_JIT=value)
    out = subprocess.run([sys.executable, "-c", SAYS], env=run, capture_output=True, text=True, cwd=ROOT,
                         timeout=120, check=True).stdout
    assert "TINYLLM_NO_MKL" not in out
    try:
        import numba  # noqa: F401
    except ImportError:
        return
    assert out.split()[-1] == "True", out


def test_no_mkl_and_no_jit_set_to_1_turn_them_off():
    run = dict(os.environ, TINYLLM_NO_MKL="1", TINYLLM_NO_JIT="yes")
    out = subprocess.run([sys.executable, "-c", SAYS], env=run, capture_output=True, text=True, cwd=ROOT,
                         timeout=120, check=True).stdout
    assert "TINYLLM_NO_MKL is on" in out and out.split()[-1] == "False", out
