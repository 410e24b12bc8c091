"""Optimizers, learning-rate schedules and gradient clipping."""
from .optimizers import SGD, Adam, AdamW, Optimizer, clip_grad_norm, decay_groups, make_optimizer
from .schedules import SCHEDULES, Constant, LinearDecay, WarmupCosine, make_schedule

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "clip_grad_norm", "decay_groups", "make_optimizer",
           "Constant", "LinearDecay", "WarmupCosine", "make_schedule", "SCHEDULES"]
