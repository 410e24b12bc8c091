"""Learning-rate schedules: callables step -> lr."""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class Constant:
    lr: float

    def __call__(self, step: int) -> float:
        return self.lr


@dataclass
class LinearDecay:
    """lr at step 0 falling linearly to 0 at max_steps."""
    lr: float
    max_steps: int

    def __call__(self, step: int) -> float:
        return self.lr * max(0.0, 1.0 - step / max(1, self.max_steps))


@dataclass
class WarmupCosine:
    """Linear warmup to lr over `warmup` steps, then cosine down to min_lr at max_steps."""
    lr: float
    max_steps: int
    warmup: int = 0
    min_lr: float = 0.0

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        if step >= self.max_steps:
            return self.min_lr
        frac = (step - self.warmup) / max(1, self.max_steps - self.warmup)
        return self.min_lr + 0.5 * (1.0 + math.cos(math.pi * frac)) * (self.lr - self.min_lr)


SCHEDULES = ("constant", "linear", "cosine")


def make_schedule(name: str, lr: float, max_steps: int, warmup: int = 0, min_lr: float | None = None):
    if name == "constant":
        return Constant(lr)
    if name == "linear":
        return LinearDecay(lr, max_steps)
    if name == "cosine":
        return WarmupCosine(lr, max_steps, warmup, lr / 10 if min_lr is None else min_lr)
    raise ValueError(f"unknown schedule {name!r}; choose one of {', '.join(SCHEDULES)}")
