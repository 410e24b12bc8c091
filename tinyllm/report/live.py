"""tinyllm train --report: RUN/report.html refreshed after each evaluation's checkpoint, and once more when
training ends (the run's lock released, so the last page no longer says it is training). The page is written
atomically (page.write_report), on rank 0 alone; a page that cannot be written is a warning, never the end of
the training. Nothing here is imported when --report is not given.

    with reporting(trainer):
        trainer.fit()
"""
from __future__ import annotations

import os
from contextlib import contextmanager

from ..errors import TinyLLMError
from ..train.log import LOG_NAME
from . import charts
from .page import write_report


class LiveReport:
    """A Trainer.after_eval hook: the page after every evaluation but the last (reporting() writes that one)."""

    def __init__(self, trainer):
        charts.plotly_lib()  # the missing extra is one line before training starts
        self.trainer, self.written, self.warned = trainer, 0, False
        self.path, self.size = None, 0  # the last page written

    def __call__(self, trainer) -> None:
        if trainer.step < trainer.config.steps:
            self.refresh()

    def refresh(self) -> None:
        t = self.trainer
        if not t.world.root:  # [dist] rank 0 writes the run's files
            return
        try:
            self.path, self.size, _ = write_report(t.out)
            self.written += 1
        except (TinyLLMError, OSError) as e:
            if not self.warned:  # once: the checkpoint is what matters, training goes on
                t.log.warn(f"report.html not written ({e}); training goes on; write it later with: "
                           f"tinyllm report --out {t.out}")
            self.warned = True


@contextmanager
def reporting(trainer):
    """Refresh out/report.html while `trainer` trains inside the block, and once after it (also after a stop
    or a failure, where the run left a log: the page shows what it logged)."""
    hook = LiveReport(trainer)
    trainer.after_eval.append(hook)
    try:
        yield hook
    except BaseException:
        try:
            if os.path.isfile(os.path.join(trainer.out, LOG_NAME)):
                hook.refresh()
        except Exception:  # noqa: BLE001  the run's own error is the one to report
            pass
        raise
    finally:
        trainer.after_eval.remove(hook)
    hook.refresh()
    if hook.path is not None:
        trainer.log.print(f"report: {hook.path} ({hook.size / 1e6:.1f} MB; open it in a browser)")
