"""What every tutorial script shares: the --device/--seed flags, a loss log,
padded batches of lines, and the claim check that sets the exit code.

A script is `main(argv) -> int` wrapped in @script: 0 when its claim holds,
1 when it does not; an error a user can act on is one line (no traceback) and
its exit code (2 for bad input, tinyllm/errors.py).
"""
from __future__ import annotations

import argparse
import functools
import sys
import time

import tinyllm
from backends.devices import meanings as device_meanings
from tinyllm.errors import TinyLLMError, UsageError  # noqa: F401  (UsageError: the scripts raise it)

IGNORE = -1  # target id that cross_entropy(ignore_index=IGNORE) leaves out of the loss


def make_parser(description: str, seed: int = 0) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--device", default="auto", help=device_meanings() + " (default %(default)s)")
    p.add_argument("--seed", type=int, default=seed, help="seed for weights and data order")
    return p


def get_device(name: str):
    """The Backend for --device; prints which one was picked."""
    b = tinyllm.device(name)
    print(f"device: {b.name}")
    return b


def script(main):
    """An error a user can act on, raised inside main(argv), becomes its one line and its exit code."""
    @functools.wraps(main)
    def wrapped(argv=None) -> int:
        try:
            return main(argv)
        except TinyLLMError as e:
            print(e.line(), file=sys.stderr)
            return e.exit_code
    return wrapped


def run(main) -> None:
    """The `if __name__ == "__main__"` line of every script."""
    sys.exit(main(sys.argv[1:]))


class Claims:
    """Collects what a script promised, prints each verdict, gives the exit code."""

    def __init__(self):
        self.items = []

    def check(self, ok: bool, text: str) -> bool:
        self.items.append((bool(ok), text))
        return bool(ok)

    def exit_code(self) -> int:
        for ok, text in self.items:
            print(f"claim {'ok    ' if ok else 'FAILED'}: {text}")
        failed = sum(not ok for ok, _ in self.items)
        print("all claims hold" if not failed else f"{failed} claim(s) failed")
        return 1 if failed else 0


class LossLog:
    """Prints `step N/M  loss ...` about `lines` times over a run, plus elapsed time."""

    def __init__(self, total: int, lines: int = 10, label: str = "step"):
        self.total, self.label = total, label
        self.every = max(1, total // lines)
        self.t0 = time.perf_counter()

    def __call__(self, step: int, loss: float, **extra) -> None:
        if step % self.every == 0 or step == self.total - 1:
            more = "".join(f"  {k} {v:.4f}" if isinstance(v, float) else f"  {k} {v}" for k, v in extra.items())
            print(f"{self.label} {step:>5}/{self.total}  loss {loss:.4f}{more}  ({self.elapsed():.1f}s)")

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0


def positive(name: str, value, low=1):
    if value < low:
        raise UsageError(f"--{name} must be at least {low}, got {value}")
    return value


def positive_float(name: str, value: float) -> float:
    if not value > 0 or value == float("inf"):
        raise UsageError(f"--{name} must be a positive number, got {value}")
    return value


# -- lines as sequences -------------------------------------------------------------
def line_ids(tok, line: str) -> list:
    """<bos> line <bos>: the one token marks both the start and the end."""
    return [tok.bos_id] + tok.encode(line) + [tok.bos_id]


def padded_batch(seqs: list, T: int, loss_from: "list | None" = None):
    """Sequences (each <= T+1 ids) -> inputs and targets (B, T) as host lists.

    Inputs are padded with <bos> (0), targets with IGNORE; loss_from[i] masks
    the targets before that position of sequence i too (to train only on answers).
    """
    xs, ys = [], []
    for i, s in enumerate(seqs):
        if len(s) > T + 1:
            raise UsageError(f"a sequence of {len(s)} tokens does not fit a block of {T}")
        x, y = s[:-1], list(s[1:])
        if loss_from is not None:
            y = [IGNORE if j + 1 < loss_from[i] else t for j, t in enumerate(y)]
        xs.append(x + [0] * (T - len(x)))
        ys.append(y + [IGNORE] * (T - len(y)))
    return xs, ys


def nll_of_lines(model, seqs: list, backend, T: int, batch: int = 512) -> float:
    """Mean negative log-likelihood per predicted token of `model` over whole lines."""
    from tinyllm import no_grad, ops

    total, count = 0.0, 0
    with no_grad():
        for i in range(0, len(seqs), batch):
            chunk = seqs[i:i + batch]
            xs, ys = padded_batch(chunk, T)
            n = sum(len(s) - 1 for s in chunk)
            logits, _ = model(backend.from_host(xs, "int64"))
            loss = ops.cross_entropy(logits, backend.from_host(ys, "int64"), ignore_index=IGNORE)
            total += loss.item() * n
            count += n
    return total / count
