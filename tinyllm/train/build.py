"""What a run builds from its settings: the model (refused up front when it cannot fit the memory) and
its optimizer."""
from __future__ import annotations

from ..errors import OutOfMemory
from ..memory import shortfall
from ..models import build_model, parameter_count
from ..optim import SGD, Adam, AdamW, decay_groups
from .guards import oom_message

# bytes of memory per parameter in training: weights, gradients and two AdamW moments, float32
TRAIN_BYTES_PER_PARAM = 16


def build_checked(name: str, mcfg, backend, seed: int = 0):
    """build_model, but a model too large for the memory is refused before any allocation
    (OutOfMemory names the parameters and the memory), and an allocation failing while it is built
    becomes OutOfMemory too."""
    n = parameter_count(name, mcfg)
    short = shortfall(TRAIN_BYTES_PER_PARAM * n) if backend.kind != "cuda" else None
    if short:
        raise OutOfMemory(f"the model would have {n:,} parameters; training it takes {short} "
                          f"({TRAIN_BYTES_PER_PARAM} bytes a parameter: weights, gradients, optimizer state); "
                          f"use a smaller model (--n-layer, --n-embd)")
    try:
        return build_model(name, mcfg, device=backend, seed=seed)
    except Exception as e:
        msg = oom_message(e)
        if msg is None:
            raise
        raise OutOfMemory(f"building the model ({n:,} parameters): {msg}") from None


def make_optimizer(cfg, model):
    """The optimizer cfg names, over model's parameters (no decay on biases and norm gains)."""
    groups = decay_groups(model, cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return AdamW(groups, lr=cfg.peak_lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return Adam(groups, lr=cfg.peak_lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay)
    return SGD(groups, lr=cfg.peak_lr, momentum=cfg.beta1, weight_decay=cfg.weight_decay)
