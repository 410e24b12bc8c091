"""A model built by name, refused up front when it cannot fit the memory (training, sampling, --init-from)."""
from __future__ import annotations

from ..errors import OutOfMemory
from ..guards import oom_message
from ..memory import human_bytes, shortfall
from . import build_model, parameter_count

# bytes of memory per parameter in training: weights, gradients and two AdamW moments, float32
TRAIN_BYTES_PER_PARAM = 16
LOAD_BYTES_PER_PARAM = 4  # sampling or exporting: the float32 weights (and the file they are read from)


def check_fits(name: str, mcfg, backend, training: bool = True, file_bytes: int = 0, fix: str | None = None) -> int:
    """The parameter count of model `name` with config mcfg; OutOfMemory (exit 3, one line ending in fix) when
    training it (training=True) or loading it (False), with the file_bytes of a weights file read first, cannot
    fit the host memory. Arithmetic on the config alone: an absurd size is refused before any allocation."""
    n = parameter_count(name, mcfg)
    per = TRAIN_BYTES_PER_PARAM if training else LOAD_BYTES_PER_PARAM
    short = shortfall(per * n + file_bytes) if backend.kind != "cuda" else None
    if short:
        what = "weights, gradients, optimizer state" if training else "the weights"
        read = f", and the {human_bytes(file_bytes)} file it is read from" if file_bytes else ""
        raise OutOfMemory(f"the model would have {n:,} parameters; {'training' if training else 'loading'} it "
                          f"takes {short} ({per} bytes a parameter: {what}{read}); "
                          f"{fix or 'use a smaller model (--n-layer, --n-embd)'}")
    return n


def build_checked(name: str, mcfg, backend, seed: int = 0, training: bool = True, fix: str | None = None):
    """build_model, but a model too large for the memory is refused before any allocation
    (check_fits), and an allocation failing while it is built becomes OutOfMemory too."""
    n = check_fits(name, mcfg, backend, training, fix=fix)
    try:
        return build_model(name, mcfg, device=backend, seed=seed)
    except Exception as e:
        msg = oom_message(e)
        if msg is None:
            raise
        raise OutOfMemory(f"building the model ({n:,} parameters): {msg}") from None

