"""A run's log: console lines (stdout; warnings on stderr), the progress bar, log.jsonl and loss.png.

When stdout is closed (`tinyllm train | head`), training goes on and the
lines are dropped with one warning: log.jsonl still gets every record.
"""
from __future__ import annotations

import json
import os
import sys
import time

from .checkpoint import output_dir_error
from .guards import point_at_devnull
from .plot import MISSING_NOTE, PLOT_NAME, plot_losses

LOG_NAME = "log.jsonl"
BACKEND_WORDS = {"cpu": "NumPy", "strict": "array-api-strict", "cuda": "CuPy"}


def describe_backend(backend) -> str:
    words = BACKEND_WORDS.get(backend.kind, backend.kind)
    fast = " + fused kernels" if backend.fast is not None else ""
    return f"{backend.name} ({words} backend{fast})"


class RunLog:
    """Everything a run reports, in out/: verbose=False keeps the console quiet (log.jsonl is still written)."""

    def __init__(self, out: str, verbose: bool = True):
        self.out, self.verbose = out, verbose
        self.bar = None      # tqdm, on a terminal
        self.closed = set()  # "stdout" / "stderr" once a write to it failed (a closed pipe)

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
        except BrokenPipeError:  # `tinyllm train | head -3`: go on training, drop the lines
            self._stream_closed("stdout")
            self.warn("stdout was closed (e.g. by `| head`); training goes on without printing, "
                      f"every record still goes to {os.path.join(self.out, LOG_NAME)}")

    def warn(self, line: str) -> None:
        if "stderr" in self.closed:
            return
        try:
            print(f"warning: {line}", file=sys.stderr, flush=True)
        except BrokenPipeError:
            self._stream_closed("stderr")

    def _stream_closed(self, name: str) -> None:
        self.closed.add(name)
        point_at_devnull(getattr(sys, name))

    def eval_line(self, rec: dict, steps: int) -> None:
        """step 250/2000 | loss 2.1 | val 2.2 | lr 1.0e-03 | 41 ms/step | 25,000 tok/s [| skipped N]"""
        line = f"step {rec['step']}/{steps} | loss {rec['train']:.4f} | val {rec['val']:.4f} | lr {rec['lr']:.1e}"
        if rec["step"] > 0 and rec["ms_per_step"] > 0:
            line += f" | {rec['ms_per_step']:.0f} ms/step | {rec['tok_per_s']:,.0f} tok/s"
        if rec["skipped"]:
            line += f" | skipped {rec['skipped']}"
        self.print(line)

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

    def plot(self, losses: list, evals: list, title: str) -> bool:
        """loss.png (per-step losses, None where skipped); without matplotlib a note, and False."""
        path = plot_losses(self.out, [x if x is not None else float("nan") for x in losses], evals, title=title)
        if path is None:
            self.print(MISSING_NOTE.format(path=os.path.join(self.out, PLOT_NAME)))
        return path is not None

    def files(self, plotted: bool) -> str:
        return ", ".join(["checkpoint.json", LOG_NAME] + ([PLOT_NAME] if plotted else []))
