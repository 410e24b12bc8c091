"""One error family: every error a user can act on is a TinyLLMError carrying its exit code, importable from
the modules that raise it (issue 23 moved GPT-2's into tinyllm.gpt2 and the guards up to tinyllm.guards), and
the CLI and the scripts turn any of them into one line and that code."""
from __future__ import annotations

import importlib
import os
import signal
import sys

import pytest

import tinyllm.errors as errors
from tinyllm.cli import run_guarded
from tinyllm.errors import TinyLLMError

# (module, name) where each error was importable before the family existed
OLD_HOMES = [
    ("backends", "DeviceError"), ("backends.select", "DeviceError"), ("backends.io", "SafetensorsFormatError"),
    ("tinyllm", "DeviceError"), ("tinyllm.data", "DataError"), ("tinyllm.data", "TokenizerError"),
    ("tinyllm.data.datasets", "DataError"), ("tinyllm.data.tokenizers", "TokenizerError"),
    ("tinyllm.sample", "SamplingError"), ("tinyllm.gpt2", "ExportError"), ("tinyllm.gpt2", "HFFormatError"),
    ("tinyllm.gpt2.layout", "HFFormatError"), ("tinyllm.train", "ConfigError"),
    ("tinyllm.train", "CheckpointError"), ("tinyllm.train", "OutputDirError"), ("tinyllm.train", "LockError"),
    ("tinyllm.train", "NonFiniteError"), ("tinyllm.train", "OutOfMemory"), ("tinyllm.train", "TrainingInterrupted"),
    ("tinyllm.train.config", "ConfigError"), ("tinyllm.train.checkpoint", "CheckpointError"),
    ("tinyllm.train.checkpoint", "OutputDirError"), ("tinyllm.train.lock", "LockError"),
    ("tinyllm.guards", "NonFiniteError"), ("tinyllm.guards", "Interrupted"),
    ("tinyllm.train.trainer", "OutOfMemory"), ("tinyllm.train.trainer", "TrainingInterrupted"),
    ("tinyllm.ops", "ShapeError"),
]

# exit code and the built-in exception a caller may already catch
EXPECTED = {
    "DeviceError": (2, ValueError), "SafetensorsFormatError": (2, ValueError), "UsageError": (2, ValueError),
    "ConfigError": (2, ValueError), "DataError": (2, ValueError), "TokenizerError": (2, ValueError),
    "TokenIdError": (2, IndexError),
    "SamplingError": (2, ValueError), "CheckpointError": (2, ValueError), "OutputDirError": (2, ValueError),
    "LockError": (2, ValueError), "HFFormatError": (2, ValueError), "ExportError": (2, ValueError),
    "ShapeError": (2, ValueError),
    "NonFiniteError": (3, ValueError), "OutOfMemory": (3, MemoryError),
    "Interrupted": (130, KeyboardInterrupt), "TrainingInterrupted": (130, KeyboardInterrupt),
}


@pytest.mark.parametrize("module,name", OLD_HOMES, ids=[f"{m}.{n}" for m, n in OLD_HOMES])
def test_old_import_paths_give_the_one_class(module, name):
    assert getattr(importlib.import_module(module), name) is getattr(errors, name)


def test_every_error_is_in_the_family_with_its_exit_code():
    family = {n for n in errors.__all__ if isinstance(getattr(errors, n), type)
              and issubclass(getattr(errors, n), TinyLLMError) and n != "TinyLLMError"}
    assert family == set(EXPECTED)
    for name, (code, builtin) in EXPECTED.items():
        cls = getattr(errors, name)
        assert issubclass(cls, builtin), name
        assert cls("x").exit_code == code, name
    assert errors.TrainingInterrupted("x", signal.SIGTERM).exit_code == 143


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_cli_maps_each_error_to_one_line_and_its_code(name, capsys):
    cls = getattr(errors, name)

    def fail():
        raise cls("the problem; the fix")

    assert run_guarded(fail) == EXPECTED[name][0]
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the problem; the fix" in err and "Traceback" not in err


@pytest.mark.parametrize("name,code", [("NonFiniteError", 3), ("OutOfMemory", 3), ("CheckpointError", 2)])
def test_scripts_map_errors_to_their_codes(name, code, capsys):
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts", "tutorials"))
    try:
        from _common import script
    finally:
        sys.path.pop(0)

    @script
    def main(argv):
        raise getattr(errors, name)("the problem; the fix")

    assert main([]) == code
    assert capsys.readouterr().err == "error: the problem; the fix\n"


def test_an_error_outside_the_family_is_not_swallowed():
    def bug():
        raise ValueError("a bug, not bad input")

    with pytest.raises(ValueError, match="a bug"):
        run_guarded(bug)
