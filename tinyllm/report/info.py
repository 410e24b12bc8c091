"""`tinyllm info --out RUN`: a run in a few lines, from its log and checkpoint.json (nothing is written)."""
from __future__ import annotations

import os

from ..train.config import TrainConfig
from .runlog import read_run

SKIP = {"out", "resume", "overwrite", "given"}  # how a run was started, not what it is


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def changed_settings(cfg: dict) -> dict:
    """The settings of a run that differ from TrainConfig's defaults."""
    base = TrainConfig().to_dict()
    return {k: v for k, v in cfg.items() if k not in SKIP and k in base and base[k] != v and v is not None}


def run_info(out: str) -> list:
    """The lines `tinyllm info` prints."""
    run = read_run(out)
    cfg = run.config
    meta = run.meta or {}
    step = run.evals[-1]["step"] if run.evals else meta.get("step", 0)
    total = cfg.get("steps", "?")
    vals = [e["val"] for e in run.evals if isinstance(e.get("val"), (int, float))]
    lines = [f"run {out}: step {step}/{total}" + (" (training now)" if run.live else "")
             + (f", checkpoint at step {meta['step']}" if "step" in meta else ", no checkpoint")]
    if vals:
        best = min(range(len(vals)), key=vals.__getitem__)
        lines.append(f"val loss: last {vals[-1]:.4f}, best {vals[best]:.4f} (step {run.evals[best]['step']})")
    diff = changed_settings(cfg)
    lines.append("settings (not the defaults): " + (", ".join(f"{k}={v}" for k, v in diff.items()) or "the defaults"))
    files = sorted(f for f in os.listdir(out) if os.path.isfile(os.path.join(out, f)))
    sizes = [os.path.getsize(os.path.join(out, f)) for f in files]
    lines.append(f"files ({_size(sum(sizes))}): " + ", ".join(f"{f} {_size(s)}" for f, s in zip(files, sizes)))
    if meta:
        more = f"continue: tinyllm train --resume --out {out}" + (f" --steps {2 * total}" if step >= total else "")
        lines.append(f"sample: tinyllm sample --out {out} | {more} | report: tinyllm report --out {out}")
    lines += [f"note: {n}" for n in run.notes]
    return lines
