"""Training: the Trainer, checkpoints, run locks and fault guards."""
