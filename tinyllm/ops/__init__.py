"""Differentiable ops. Each module holds forward and backward side by side;
every op is registered in registry.OPS and gradient-checked by the tests."""
from .registry import OPS, op
from .elementwise import add, sub, mul, div, neg, pow, exp, log, sqrt, tanh, sigmoid, relu, gelu, cast
from .reduce import sum, mean, max
from .shape import reshape, permute, transpose, getitem, concat, where, masked_fill
from .linalg import linear, matmul
from .activation import softmax, log_softmax
from .norm import layer_norm, rms_norm
from .embedding import embedding
from .dropout import dropout
from .loss import cross_entropy, mse_loss
from .attention import attention, causal_mask, self_attention
from .unbind import unbind
from ..errors import ShapeError
from ._util import device_array  # for models/ (not in __all__: internal, as OPS and op are)
from . import methods

methods.install()  # Tensor's operators and methods: x + y, x @ w, x.sum(), ...

__all__ = sorted(OPS) + ["causal_mask", "ShapeError"]
