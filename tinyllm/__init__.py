"""tinyllm: a tiny-LLM training library whose autograd engine is written once
against the Python Array API standard and runs on NumPy, CuPy and array-api-strict.

The public face is __all__: tensors and autograd (tinyllm/autograd.py), the
differentiable ops (tinyllm.ops: add, matmul, attention, ...), devices,
training and sampling. The modules keep their internals (ops.registry's op and
OPS, ops' device_array).
"""
from backends import Backend, DeviceError, available_backends, get_backend
from backends.devices import names as _device_names

from . import ops
from .autograd import Tensor, default_backend, is_grad_enabled, no_grad, set_default_device, tensor
from .errors import TinyLLMError
from .finite_diff import GradcheckResult, gradcheck
from .ops import *  # noqa: F401,F403  (ops.__all__: the differentiable ops, causal_mask, ShapeError)
from .random import manual_seed
from .version import __version__


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

__all__ = [
    # tensors and autograd
    "Tensor", "tensor", "no_grad", "is_grad_enabled", "gradcheck", "GradcheckResult", "manual_seed",
    # devices
    "device", "Backend", "DeviceError", "available_backends", "get_backend", "default_backend",
    "set_default_device",
    # training and sampling
    "Trainer", "TrainConfig", "load_trained", "generate", "generate_batch", "complete", "sample_lines",
    "TinyLLMError", "ops", *ops.__all__,
]
