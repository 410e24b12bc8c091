"""What every model config and model shares: validation helpers, to_dict, the device."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from backends import Backend, DeviceError, backend_of, get_backend

from ..ids import check_token_ids
from ..ops import device_array
from ..autograd import Tensor, default_backend


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


def token_ids(model, idx, backend: Backend):
    """idx (a Tensor, a device array or host ids) as an int64 array on the model's device; ids on
    another device are refused naming both (moving is explicit, as for the ops), host ids outside the
    vocabulary too (TokenIdError), before they go over."""
    owner = idx.backend if isinstance(idx, Tensor) else backend_of(idx)
    if owner is not None and owner != backend and (isinstance(idx, Tensor) or owner.kind != "cpu"):
        raise DeviceError(f"the {type(model).__name__} model is on {backend.name}, its input ids on {owner.name}; "
                          f"move them first, e.g. idx.to({backend.name!r})")
    check_token_ids(idx, model.config.vocab_size, f"the {type(model).__name__} model's input ids")
    return device_array(idx, backend, "int64")
