"""Training: the Trainer, its config, checkpoints and run locks (the fault guards: tinyllm/guards.py)."""
from .checkpoint import CheckpointError, OutputDirError, has_checkpoint, load_checkpoint, save_checkpoint
from .config import ConfigError, TrainConfig, load_toml
from ..guards import NonFiniteError
from .lock import LockError, RunLock
from .resume import load_trained
from .trainer import OutOfMemory, Trainer, TrainingInterrupted

__all__ = ["Trainer", "TrainConfig", "ConfigError", "load_toml", "load_trained", "CheckpointError",
           "OutputDirError", "LockError", "NonFiniteError", "OutOfMemory", "TrainingInterrupted",
           "RunLock", "has_checkpoint", "load_checkpoint", "save_checkpoint"]
