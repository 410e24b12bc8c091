"""What every model config and model shares: validation helpers, to_dict, the device."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from backends import Backend, get_backend

from ..tensor import default_backend


@dataclass
class ModelConfig:
    """Base of the model configs (dataclasses); subclasses add fields and validate()."""

    def positive_ints(self, *names: str) -> None:
        for name in names:
            v = getattr(self, name)
            if not isinstance(v, int) or v <= 0:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")

    def to_dict(self) -> dict:
        return asdict(self)


def model_backend(device) -> Backend:
    """The backend a model is built on: `device`, or the default one (cpu) when None."""
    return get_backend(device) if device is not None else default_backend()
