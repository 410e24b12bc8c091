"""The one family of errors a user can act on, and the exit codes they map to: each is one line
naming the problem and the fix, and its `exit_code` is what the command line exits with. The base
lives on this lower floor because backends/ raises two of them (DeviceError, SafetensorsFormatError);
tinyllm/errors.py holds the rest.
"""
from __future__ import annotations

EXIT_OK = 0
EXIT_CHECK_FAILED = 1    # a check failed: `tinyllm gradcheck`, a tutorial script's claim
EXIT_BAD_INPUT = 2       # settings, data, device, checkpoint, output directory (argparse's own errors are 2 too)
EXIT_FAILED = 3          # a run that failed while running: non-finite loss, out of memory
EXIT_INTERRUPTED = 130   # 128 + SIGINT, what a shell reports for Ctrl-C (SIGTERM: 143)


class TinyLLMError(BaseException):
    """Base of every error a user can act on; the CLI and the scripts turn any of them into an exit with
    one `except TinyLLMError`. Subclasses also derive from the built-in exception a caller expects
    (ValueError for bad input, MemoryError, KeyboardInterrupt for a stop asked by a signal), so
    `except ValueError` still catches bad input; the base derives from BaseException, like
    KeyboardInterrupt, so that `except Exception` never swallows a Ctrl-C, and is never raised itself."""

    exit_code = EXIT_BAD_INPUT
    prefix = "error: "  # how the CLI starts its one line

    def line(self) -> str:
        """The one line the CLI prints for this error."""
        return f"{self.prefix}{self}"


class DeviceError(TinyLLMError, ValueError):
    """A device string that is malformed or names a device that is not usable, or tensors of two devices."""


class SafetensorsFormatError(TinyLLMError, ValueError):
    """Bytes that are not a well-formed safetensors file; the message says why."""
