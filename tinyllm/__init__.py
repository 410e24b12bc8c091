"""tinyllm: a tiny-LLM training library whose autograd engine is written once
against the Python Array API standard and runs on NumPy, CuPy and array-api-strict."""
from backends import Backend, DeviceError, available_backends, get_backend
from backends.devices import names as _device_names

from . import ops
from .errors import TinyLLMError
from .gradcheck import GradcheckResult, gradcheck
from .ops import *  # noqa: F401,F403  (the differentiable ops: add, matmul, attention, ...)
from .random import manual_seed
from .tensor import Tensor, default_backend, is_grad_enabled, no_grad, set_default_device, tensor

__version__ = "0.1.0"


def device(spec: "str | Backend" = "auto", fallback: bool = True) -> Backend:
    """The compute device: {forms} (backends/devices.py).

    "auto" takes a usable GPU and otherwise the CPU, silently; an explicit
    "cuda" that cannot be used falls back to the CPU with one warning line
    (fallback=True) or raises DeviceError (fallback=False).
    """
    return get_backend(spec, fallback=fallback)


device.__doc__ = device.__doc__.format(forms=_device_names(quote='"'))


# Training and sampling: Trainer(TrainConfig(...)).fit(), generate(model, prompt, ...)
from .sample import complete, generate, generate_batch, sample_lines  # noqa: E402
from .train import TrainConfig, Trainer, load_trained  # noqa: E402
