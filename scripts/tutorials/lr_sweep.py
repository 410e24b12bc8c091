"""Learning-rate sweep: too small creeps, too large diverges.

Trains the same small model (a 3-character MLP on names, same initial
weights every time) with plain SGD at learning rates a factor of 10 apart,
and prints a table of the loss along the way (and saves a plot when
matplotlib is installed). Claim: the smallest rate creeps (it covers less
than a quarter of the best rate's drop), the largest diverges (its loss ends
above where it started, or is not finite), and the best rate is one in
between.

    python scripts/tutorials/lr_sweep.py --device cpu --plot lr_sweep.png
"""
from __future__ import annotations

import math

from _common import Claims, UsageError, get_device, make_parser, positive, run, script

from tinyllm import ops
from tinyllm.data import Batcher, names_dataset
from tinyllm.models import CharMLP, MLPConfig
from tinyllm.optim import SGD

CREEP, CHECKPOINTS = 0.25, 6


def train_curve(ds, backend, lr: float, steps: int, batch: int, seed: int) -> list:
    """Loss at every step (inf once it stops being finite)."""
    model = CharMLP(MLPConfig(vocab_size=ds.tokenizer.vocab_size, block_size=3, n_embd=10, n_hidden=64),
                    device=backend, seed=seed)
    data = Batcher(ds.train, backend, 3)
    rng = backend.rng(seed)  # same batches for every rate
    opt = SGD(model.parameters(), lr=lr)
    curve = []
    for _ in range(steps):
        x, y = data.batch(batch, rng)
        loss = ops.cross_entropy(model.window_logits(x), y[:, -1])
        value = loss.item()
        if not math.isfinite(value):
            curve += [math.inf] * (steps - len(curve))
            break
        curve.append(value)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return curve


def smooth(curve: list, i: int, width: int = 10) -> float:
    """Mean of the `width` losses ending at step i (one batch is noisy)."""
    part = curve[max(0, i - width + 1):i + 1]
    return sum(part) / len(part)


def save_plot(path: str, curves: dict) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib is not installed: no plot; pip install matplotlib)")
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    for lr, curve in curves.items():
        ax.plot([min(v, 5.0) for v in curve], label=f"lr {lr:g}")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (capped at 5)")
    ax.set_title("SGD learning-rate sweep: 3-char MLP on names")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"plot saved to {path}")


@script
def main(argv=None) -> int:
    p = make_parser(__doc__.splitlines()[0])
    p.add_argument("--lrs", default="0.001,0.01,0.1,1,10,100", help="comma-separated learning rates, ascending")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--plot", default=None, help="save a PNG of the curves here (needs matplotlib)")
    args = p.parse_args(argv)
    positive("steps", args.steps, low=CHECKPOINTS)
    positive("batch", args.batch)
    try:
        lrs = sorted(float(s) for s in args.lrs.split(","))
    except ValueError:
        raise UsageError(f"--lrs takes numbers separated by commas, got {args.lrs!r}") from None
    if len(lrs) < 3 or lrs[0] <= 0:
        raise UsageError("--lrs needs at least three positive learning rates")
    backend = get_device(args.device)
    ds = names_dataset(args.seed)
    curves = {lr: train_curve(ds, backend, lr, args.steps, args.batch, args.seed) for lr in lrs}

    marks = [round(i * (args.steps - 1) / (CHECKPOINTS - 1)) for i in range(CHECKPOINTS)]
    print("training loss (mean of the last 10 steps) at step:")
    print(f"{'lr':>8}" + "".join(f"{m:>9}" for m in marks))
    for lr, curve in curves.items():
        print(f"{lr:>8g}" + "".join(f"{smooth(curve, m, 1 if m == 0 else 10):>9.3f}" for m in marks))
    if args.plot:
        save_plot(args.plot, curves)

    start = curves[lrs[0]][0]  # the same initial weights and first batch for every rate
    final = {lr: smooth(c, args.steps - 1) for lr, c in curves.items()}
    best = min(lrs, key=lambda lr: final[lr])
    drop_best = start - final[best]
    progress_small = (start - final[lrs[0]]) / drop_best if drop_best > 0 else 0.0
    print(f"best rate {best:g}: loss {start:.3f} -> {final[best]:.3f}")
    claims = Claims()
    claims.check(progress_small < CREEP, f"lr {lrs[0]:g} creeps: {progress_small:.0%} of the best drop "
                                         f"(< {CREEP:.0%})")
    claims.check(not final[lrs[-1]] < start, f"lr {lrs[-1]:g} diverges: final loss {final[lrs[-1]]:.3f} "
                                             f">= starting loss {start:.3f}")
    claims.check(lrs[0] < best < lrs[-1], f"the best rate ({best:g}) lies strictly between them")
    return claims.exit_code()


if __name__ == "__main__":
    run(main)
