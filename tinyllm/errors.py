"""Every error tinyllm raises for a user to act on, in one family (backends/errors.py).

Each is a TinyLLMError carrying its exit code, and the built-in exception a
caller expects. Bad input exits 2; a run that failed while running exits 3;
a stop asked by a signal exits 128 + the signal (130 Ctrl-C, 143 SIGTERM).
The modules that raise them re-export them where they always were
(tinyllm.train.ConfigError, tinyllm.data.DataError, ...).
"""
from __future__ import annotations

import signal

from backends.errors import (EXIT_BAD_INPUT, EXIT_CHECK_FAILED, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK,
                             DeviceError, SafetensorsFormatError, TinyLLMError)

# -- bad input (exit 2) ---------------------------------------------------------------------------


class UsageError(TinyLLMError, ValueError):
    """Bad input found after the flags were parsed (e.g. an option out of range)."""


class ConfigError(TinyLLMError, ValueError):
    """A training setting that cannot work; the message names the setting and a fix."""


class DataError(TinyLLMError, ValueError):
    """A data file or dataset that cannot be used; the message says why and what to do."""


class TokenIdError(DataError, IndexError):
    """A token id outside the model's vocabulary, found on the host before the ids went to the device (where
    a lookup would wrap or read past its table); an IndexError too, as NumPy's out-of-range take is."""


class TokenizerError(TinyLLMError, ValueError):
    """Text the tokenizer cannot encode, or a tokenizer file that does not parse."""


class SamplingError(TinyLLMError, ValueError):
    """Sampling settings that cannot work (negative temperature, top_p out of range, ...)."""


class CheckpointError(TinyLLMError, ValueError):
    """A checkpoint that is missing, damaged or does not fit the run; one line saying what to do."""


class OutputDirError(TinyLLMError, ValueError):
    """The output directory cannot be written (missing permission, read-only, disk full)."""


class LockError(TinyLLMError, ValueError):
    """Another live run holds the output directory."""


class HFFormatError(TinyLLMError, ValueError):
    """A Hugging Face GPT-2 config or state dict tinyllm cannot map (or a model GPT-2's layout cannot hold)."""


class ExportError(TinyLLMError, ValueError):
    """An export destination that cannot be written (exists with files, unwritable, disk full); nothing was left."""


class ShapeError(TinyLLMError, ValueError):
    """An op given operands whose shapes do not fit together; the message names the op and the shapes,
    e.g. `matmul: (2, 2) @ (1, 3): the inner sizes 2 and 1 differ`."""


# -- a run that failed while running (exit 3) -------------------------------------------------------


class NonFiniteError(TinyLLMError, ValueError):
    """The loss or the gradient norm became nan or inf."""

    exit_code = EXIT_FAILED


class OutOfMemory(TinyLLMError, MemoryError):
    """The device (or host) ran out of memory; the message names the size and a fix."""

    exit_code = EXIT_FAILED


class DiskFull(TinyLLMError, OSError):
    """A write ran out of disk space (or past a file-size limit); the message says how much is free."""

    exit_code = EXIT_FAILED


# -- a stop asked by a signal (exit 128 + the signal) -----------------------------------------------


class Interrupted(TinyLLMError, KeyboardInterrupt):
    """A stop asked by a signal; its message says what was saved; exit_code is 128 + the signal number."""

    prefix = ""

    def __init__(self, message: str = "", signum: int = signal.SIGINT):
        super().__init__(message)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + int(self.signum)


class TrainingInterrupted(Interrupted):
    """Ctrl-C or SIGTERM during training: the step was finished and a checkpoint saved (exit 130 / 143)."""


__all__ = ["TinyLLMError", "EXIT_OK", "EXIT_CHECK_FAILED", "EXIT_BAD_INPUT", "EXIT_FAILED", "EXIT_INTERRUPTED",
           "DeviceError", "SafetensorsFormatError", "UsageError", "ConfigError", "DataError", "TokenIdError",
           "TokenizerError",
           "SamplingError", "CheckpointError", "OutputDirError", "LockError", "HFFormatError", "ExportError", "ShapeError",
           "NonFiniteError", "OutOfMemory", "Interrupted", "TrainingInterrupted"]
