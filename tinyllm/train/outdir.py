"""Where a run writes: a fresh runs/<date>-<time>-<run id> for a library run given no --out, and never into
an earlier run (or a user's files) unless asked."""
from __future__ import annotations

import os
import time

from .checkpoint import OutputDirError, committed_file, run_files
from .lock import RunLock
from .log import foreign_run_files

RUNS_DIR = "runs"  # where a library run without config.out gets its fresh directory; the CLI's runs go to ./out


def with_out(cfg, run_id: str):
    """cfg, with a fresh directory under RUNS_DIR when it names none."""
    if cfg.out is not None:
        return cfg
    return cfg.replace(out=os.path.join(RUNS_DIR, f"{time.strftime('%Y%m%d-%H%M%S')}-{run_id}"))


def check_fresh_out(cfg) -> str | None:
    """OutputDirError unless a new run may write in cfg.out -> the id of the earlier run it replaces
    (--overwrite; "legacy" for one without an id), or None."""
    found = run_files(cfg.out) if os.path.isdir(cfg.out) else []
    if not found:
        return None
    RunLock(cfg.out).check()  # a live run there: say that, not "holds a run"
    foreign = foreign_run_files(cfg.out)
    if foreign:  # a user's own file: never replaced, never written into
        raise OutputDirError(f"{os.path.join(cfg.out, foreign[0])!r} was not written by a tinyllm run (it carries "
                             f"no run id) and a run writes its {foreign[0]} there; move that file, or point "
                             f"--out at another directory")
    if not cfg.overwrite:
        how = "pass --resume to continue it, another --out," if "checkpoint.json" in found else \
            "pass another --out,"
        raise OutputDirError(f"output directory {cfg.out!r} already holds a training run ({', '.join(found)}); "
                             f"{how} or --overwrite to replace it")
    return committed_file(cfg.out)[0] or "legacy"
