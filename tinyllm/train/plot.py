"""The loss curve as a PNG (train per step, train/val at each evaluation).

matplotlib is optional (pip install "tinyllm[plot]"); without it plot_losses
returns None and the trainer prints a one-line note instead.
"""
from __future__ import annotations

import os

PLOT_NAME = "loss.png"
RUN_KEY = "tinyllm-run"  # the PNG text chunk naming the run that drew the plot (a user's own loss.png has none)
MISSING_NOTE = 'note: matplotlib is not installed, so no loss plot; pip install "tinyllm[plot]" to get {path}'


def _smooth(xs: list, k: int) -> list:
    """Running mean over the last k values (a readable curve from noisy per-step losses)."""
    out, acc = [], 0.0
    for i, x in enumerate(xs):
        acc += x
        if i >= k:
            acc -= xs[i - k]
        out.append(acc / min(i + 1, k))
    return out


def plot_losses(out_dir: str, losses: list, evals: list, title: str = "", run_id: str | None = None) -> str | None:
    """losses: per-step training loss (index = step - 1); evals: dicts with step, train, val;
    run_id: the run that draws it, kept in the PNG (png_run_id reads it back).

    Returns the PNG path, or None when matplotlib is missing.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    path = os.path.join(out_dir, PLOT_NAME)
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    finite = [(i + 1, x) for i, x in enumerate(losses) if x == x and abs(x) != float("inf")]
    if finite:
        steps, vals = zip(*finite)
        ax.plot(steps, vals, color="tab:blue", alpha=0.2, lw=0.8)
        ax.plot(steps, _smooth(list(vals), max(1, len(vals) // 50)), color="tab:blue", lw=1.2, label="train (per step)")
    if evals:
        ax.plot([e["step"] for e in evals], [e["train"] for e in evals], "o-", color="tab:cyan", ms=3, label="train (eval)")
        ax.plot([e["step"] for e in evals], [e["val"] for e in evals], "o-", color="tab:orange", ms=3, label="val")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy loss (nats/token)")
    if title:
        ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp, metadata={RUN_KEY: run_id} if run_id else None)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def png_run_id(path: str) -> str | None:
    """The run id a tinyllm plot carries in its text chunk; None for any other file (no matplotlib needed)."""
    try:
        with open(path, "rb") as f:
            if f.read(8) != b"\x89PNG\r\n\x1a\n":
                return None
            while True:
                head = f.read(8)
                if len(head) < 8 or head[4:] in (b"IDAT", b"IEND"):
                    return None  # the text chunks come before the image data
                size = int.from_bytes(head[:4], "big")
                if head[4:] == b"tEXt" and size < 4096:
                    key, _, value = f.read(size).partition(b"\0")
                    if key.decode("latin-1") == RUN_KEY:
                        return value.decode("latin-1")
                    f.seek(4, os.SEEK_CUR)
                else:
                    f.seek(size + 4, os.SEEK_CUR)
    except OSError:
        return None
