"""A run's log: console lines (stdout; warnings on stderr), the progress bar, log.jsonl and loss.png.

When stdout is closed (`tinyllm train | head`) or cannot be written (`>/dev/full`, a
full disk under a redirect), training goes on and the lines are dropped with one
warning on the other stream: log.jsonl still gets every record. Off a terminal
(no progress bar) each evaluation line carries the elapsed time and an ETA.

log.jsonl's first record (the start) carries the run id and loss.png carries it
in a text chunk: foreign_run_files() finds a user's file of those names, which
a run neither replaces nor writes into.
"""
from __future__ import annotations

import json
import os
import re
import sys
import time

from .checkpoint import output_dir_error
from ..guards import point_at_devnull
from .plot import MISSING_NOTE, PLOT_NAME, plot_losses, png_run_id

LOG_NAME = "log.jsonl"
BACKEND_WORDS = {"cpu": "NumPy", "strict": "array-api-strict", "cuda": "CuPy"}
_RUN_ID = re.compile(r"[0-9a-f]{8}")


def _log_run_id(path: str) -> str | None:
    """The run id of log.jsonl's first record ("" for an empty file: a run killed as it began); None: no run's."""
    try:
        with open(path, "rb") as f:
            first = f.readline(1 << 20)
    except OSError:
        return None
    if not first:
        return ""
    try:
        rec = json.loads(first.decode("utf-8"))
    except ValueError:
        return None
    run = rec.get("run_id") if isinstance(rec, dict) else None
    return run if isinstance(run, str) and _RUN_ID.fullmatch(run) else None


def foreign_run_files(out_dir: str) -> list:
    """log.jsonl / loss.png in out_dir that no tinyllm run wrote (they carry no run id): a user's own."""
    found = []
    for name, run_id in ((LOG_NAME, _log_run_id), (PLOT_NAME, png_run_id)):
        path = os.path.join(out_dir, name)
        if os.path.lexists(path) and (not os.path.isfile(path) or os.path.islink(path) or run_id(path) is None):
            found.append(name)
    return found


def _clock(seconds: float) -> str:
    """42s, 3m05s, 1h02m."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def describe_backend(backend) -> str:
    words = BACKEND_WORDS.get(backend.kind, backend.kind)
    fast = " + fused kernels" if backend.fast is not None else ""
    return f"{backend.name} ({words} backend{fast})"


class RunLog:
    """Everything a run reports, in out/: verbose=False keeps the console quiet (log.jsonl is still written)."""

    def __init__(self, out: str, verbose: bool = True):
        self.out, self.verbose = out, verbose
        self.bar = None      # tqdm, on a terminal
        self.closed = set()  # "stdout" / "stderr" once a write to it failed (a closed pipe, a full disk)
        self.clock = None    # (perf_counter at the loop's start, its first step, its last step): elapsed, ETA

    @property
    def printing(self) -> bool:
        return self.verbose and "stdout" not in self.closed

    # -- console ------------------------------------------------------------------------------
    def print(self, line: str) -> None:
        if not self.printing:
            return
        try:
            if self.bar is not None:
                self.bar.write(line, file=sys.stdout)
            else:
                print(line, flush=True)
        except (OSError, ValueError) as e:  # `| head -3`, `>/dev/full`: go on training, drop the lines
            self._stream_failed("stdout", e)

    def warn(self, line: str) -> None:
        if "stderr" in self.closed:
            return
        try:
            print(f"warning: {line}", file=sys.stderr, flush=True)
        except (OSError, ValueError) as e:
            self._stream_failed("stderr", e)

    def _stream_failed(self, name: str, e: Exception) -> None:
        """Drop the stream's lines from now on (pointed at /dev/null), and say so once on the other one."""
        self.closed.add(name)
        point_at_devnull(getattr(sys, name))
        why = "was closed (e.g. by `| head`)" if isinstance(e, (BrokenPipeError, ValueError)) else \
            f"cannot be written ({getattr(e, 'strerror', None) or e})"
        dropped = "printing" if name == "stdout" else "warnings"
        line = (f"{name} {why}; training goes on without {dropped}, every record still goes to "
                f"{os.path.join(self.out, LOG_NAME)}")
        if name == "stdout":
            self.warn(line)
        else:
            self.print(f"warning: {line}")

    def eval_line(self, rec: dict, steps: int) -> None:
        """step 250/2000 | loss 2.1 | val 2.2 | lr 1.0e-03 | 41 ms/step | 25,000 tok/s [| skipped N]"""
        line = f"step {rec['step']}/{steps} | loss {rec['train']:.4f} | val {rec['val']:.4f} | lr {rec['lr']:.1e}"
        if rec["step"] > 0 and rec["ms_per_step"] > 0:
            line += f" | {rec['ms_per_step']:.0f} ms/step | {rec['tok_per_s']:,.0f} tok/s"
        if rec["skipped"]:
            line += f" | skipped {rec['skipped']}"
        self.print(line + self._elapsed_eta(rec["step"]))

    def _elapsed_eta(self, step: int) -> str:
        """' | elapsed 1m02s | eta 3m10s' off a terminal (on one, the progress bar shows them); '' before a step."""
        if self.bar is not None or self.clock is None or step <= self.clock[1]:
            return ""
        start, first, last = self.clock
        elapsed = time.perf_counter() - start
        return f" | elapsed {_clock(elapsed)} | eta {_clock(elapsed / (step - first) * max(last - step, 0))}"

    def transfers(self, device: str, transfers: dict) -> None:
        """What crossed between host and device this run, per phase and per call of it."""
        self.print(f"host <-> device on {device} (per call of each phase):")
        for phase, t in transfers.items():
            n = t["calls"]
            self.print(f"  {phase:<10} x{n:<6} host->device {t['h2d_calls'] / n:g} copies, "
                       f"{t['h2d_bytes'] / n:,.0f} B | device->host {t['d2h_calls'] / n:g} reads, "
                       f"{t['d2h_bytes'] / n:,.0f} B | syncs {t['syncs'] / n:g}")

    # -- progress bar ----------------------------------------------------------------------------
    def open_bar(self, total: int, initial: int) -> None:
        self.bar = None
        self.clock = (time.perf_counter(), initial, total)
        if self.verbose and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, leave=False)

    def advance(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def show_loss(self, loss: float) -> None:
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.3f}", refresh=False)

    def close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.bar = None

    # -- files in out/ -----------------------------------------------------------------------------
    def start_new(self) -> None:
        """An empty log.jsonl (--overwrite: the earlier run's log is not continued)."""
        try:
            open(os.path.join(self.out, LOG_NAME), "w", encoding="utf-8").close()
        except OSError as e:
            raise output_dir_error(self.out, e, f"write the training log {LOG_NAME}") from None

    def record(self, rec: dict) -> None:
        rec = {"time": round(time.time(), 3), **rec}
        try:  # disk full / read-only: one clear line, not a traceback
            with open(os.path.join(self.out, LOG_NAME), "a", encoding="utf-8") as f:
                f.write(json.dumps(rec) + "\n")
        except OSError as e:
            raise output_dir_error(self.out, e, f"write the training log {LOG_NAME}") from None

    def plot(self, losses: list, evals: list, title: str, run_id: str | None = None) -> bool:
        """loss.png (per-step losses, None where skipped), marked as run_id's; without matplotlib a note, and False."""
        path = plot_losses(self.out, [x if x is not None else float("nan") for x in losses], evals, title=title,
                           run_id=run_id)
        if path is None:
            self.print(MISSING_NOTE.format(path=os.path.join(self.out, PLOT_NAME)))
        return path is not None

    def files(self, plotted: bool) -> str:
        return ", ".join(["checkpoint.json", LOG_NAME] + ([PLOT_NAME] if plotted else []))
