"""What a run left on disk, read without writing anything: log.jsonl's records, the checkpoint's meta, the
files, whether a run holds the directory now. Whatever is missing becomes a note, never an exception,
except a directory that holds no run at all (CheckpointError: one line, exit 2)."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from ..errors import CheckpointError, TinyLLMError
from ..train.checkpoint import has_checkpoint, read_meta
from ..train.lock import RunLock
from ..train.log import LOG_NAME


@dataclass
class RunRecords:
    out: str
    steps: list = field(default_factory=list)    # log.jsonl "step" records (every --log-interval)
    evals: list = field(default_factory=list)    # "eval" records (health and samples where logged)
    starts: list = field(default_factory=list)   # "start" records (one per start or resume)
    end: dict | None = None                      # the last "end" record
    meta: dict | None = None                     # the checkpoint's meta (None: no checkpoint)
    live: bool = False                           # a run holds the directory now
    notes: list = field(default_factory=list)    # what is missing, in words

    @property
    def config(self) -> dict:
        if self.starts and isinstance(self.starts[-1].get("config"), dict):
            return self.starts[-1]["config"]
        train = (self.meta or {}).get("train")
        return train if isinstance(train, dict) else {}


def read_log(path: str) -> tuple:
    """(records, bad lines): log.jsonl's JSON objects; a torn last line (a run writing now) is skipped."""
    recs, bad = [], 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                r = json.loads(line)
            except ValueError:
                bad += 1
                continue
            if isinstance(r, dict):
                recs.append(r)
    return recs, bad


def read_run(out: str) -> RunRecords:
    """The run in `out`; CheckpointError when it is not a directory or holds neither a log nor a checkpoint."""
    if not os.path.isdir(out):
        what = "is a file, not" if os.path.exists(out) else "does not exist; it is not"
        raise CheckpointError(f"{out!r} {what} a training run's directory; pass --out the directory that "
                              f"tinyllm train --out DIR wrote")
    log_path = os.path.join(out, LOG_NAME)
    has_log, has_ckpt = os.path.isfile(log_path), has_checkpoint(out)
    if not has_log and not has_ckpt:
        raise CheckpointError(f"no training run in {out!r}: neither {LOG_NAME} nor checkpoint.json is there; "
                              f"train one first (tinyllm train --out {out})")
    run = RunRecords(out)
    if has_ckpt:
        try:
            run.meta = read_meta(out)
        except TinyLLMError as e:
            run.notes.append(f"the checkpoint cannot be read ({e}); the model sections are left out")
    if has_log:
        _take_log(run, log_path)
    else:
        _from_meta(run)
    try:
        RunLock(out).check()
    except TinyLLMError:
        run.live = True
        run.notes.append("a run is training in this directory now: this report shows what it had logged so far")
    return run


def _take_log(run: RunRecords, path: str) -> None:
    try:
        recs, bad = read_log(path)
    except OSError as e:
        run.notes.append(f"{LOG_NAME} cannot be read ({e.strerror or e})")
        return
    for r in recs:
        ev = r.get("event")
        if ev == "step":
            run.steps.append(r)
        elif ev == "eval":
            run.evals.append(r)
        elif ev == "start":
            run.starts.append(r)
        elif ev == "end":
            run.end = r
    if bad:
        run.notes.append(f"{bad} line(s) of {LOG_NAME} could not be read and were skipped")
    if not run.steps and not run.evals:
        run.notes.append(f"{LOG_NAME} holds no step or evaluation records yet")
    if run.evals and "health" not in run.evals[-1]:
        run.notes.append("this run's log has no network health (a run from an older tinyllm): that section is empty")


def _from_meta(run: RunRecords) -> None:
    """An older layout (no log.jsonl): the per-step losses and evaluations the checkpoint keeps."""
    run.notes.append(f"no {LOG_NAME} (a run from an older layout?): losses and evaluations come from "
                     f"checkpoint.json; learning rate, gradient norm, speed and health are missing")
    meta = run.meta or {}
    losses = meta.get("losses") if isinstance(meta.get("losses"), list) else []
    run.steps = [{"step": k + 1, "loss": v} for k, v in enumerate(losses)]
    evals = meta.get("log") if isinstance(meta.get("log"), list) else []
    run.evals = [e for e in evals if isinstance(e, dict)]
