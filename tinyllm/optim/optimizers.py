"""SGD (+momentum), Adam and AdamW over leaf tensors' raw arrays (a model's Parameters, or tensors
made with requires_grad=True), and gradient clipping. Settings that cannot train (lr nan, betas
outside [0, 1), eps <= 0, no parameters, ...) are refused when an optimizer is made: ConfigError,
a ValueError.

The parameters of an optimizer live in one flat array and their gradients in
another (optim/flat.py), so a step is a few whole-array calls per parameter
group, never per parameter tensor, and its state (Adam's moments) is flat too.
A backend's fused kernel (backend.fast.adam_step) runs where present.
Updates happen in place, on arrays outside the graph.
"""
from __future__ import annotations

import math
import numbers

from ..errors import ConfigError
from ..autograd import Tensor
from .flat import FlatParams


class Optimizer:
    """Keeps a list of param groups: {"params": [...], "weight_decay": float}."""

    slots: tuple = ()  # per-parameter state arrays (kept flat), e.g. Adam's ("m", "v")

    def __init__(self, params, lr: float, weight_decay: float = 0.0):
        self.lr = check_setting("lr", lr)
        params = list(params)
        if params and isinstance(params[0], dict):
            self.groups = [dict(g) for g in params]
        else:
            self.groups = [{"params": params}]
        for g in self.groups:
            g["weight_decay"] = check_setting("weight_decay", g.get("weight_decay", weight_decay))
            g["params"] = list(g["params"])
        ordered = [p for g in self.groups for p in g["params"]]
        check_params(ordered)
        self.step_count = 0
        self.flat = FlatParams(ordered)
        self.state: dict = {}  # slot name -> flat array, made at the first step (or when loaded)
        self._ranges, i = [], 0  # each group's parameters: params[i:j]
        for g in self.groups:
            self._ranges.append((i, i + len(g["params"])))
            i += len(g["params"])

    @property
    def params(self) -> list:
        return [p for g in self.groups for p in g["params"]]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def _make_state(self) -> None:
        for k in self.slots:
            if k not in self.state:
                self.state[k] = self.flat.zeros()

    def step(self, only_if=None) -> None:
        """One update of every parameter that has a gradient.

        only_if: a device bool scalar; where it is False the parameters and the
        state stay as they were (a non-finite step skipped without reading it
        on the host). The step count advances either way.
        """
        self.step_count += 1
        flat = self.flat
        xp = flat.backend.xp
        with flat.backend.activate():
            flat.sync()
            self._make_state()
            arrays = [flat.data, *self.state.values()]
            saved = [xp.asarray(a, copy=True) for a in arrays] if only_if is not None else None
            for g, (i, j) in zip(self.groups, self._ranges):
                ps = flat.params[i:j]
                if not ps:
                    continue
                if all(p.grad is not None for p in ps):  # the whole group at once
                    sl = flat.span(i, j)
                    self._update(flat.data[sl], flat.grad[sl], {k: a[sl] for k, a in self.state.items()},
                                 g["weight_decay"])
                    continue
                for k in range(i, j):  # some parameters got no gradient: update the others one by one
                    if flat.params[k].grad is not None:
                        self._update(flat.view(flat.data, k), flat.view(flat.grad, k),
                                     {s: flat.view(a, k) for s, a in self.state.items()}, g["weight_decay"])
            if saved is not None:
                for a, old in zip(arrays, saved):
                    a[...] = xp.where(only_if, a, old)

    def _update(self, p, g, state: dict, wd: float) -> None:
        """Update p (and the state arrays) in place from gradient g; all flat or all one parameter's."""
        raise NotImplementedError

    def clip_grad_norm(self, max_norm: float | None):
        """The global L2 norm of the gradients as a device scalar (no host read); where it exceeds
        max_norm the gradients are scaled down to it, on the device. None / 0: no clipping."""
        flat = self.flat
        xp = flat.backend.xp
        with flat.backend.activate():
            flat.sync()
            for p in flat.params:
                if p.grad is None:  # its slice holds an old gradient: it must not count
                    p.grad_buffer[...] = 0.0
            norm = xp.sqrt(sum_squares(xp, flat.grad))
            if max_norm:
                flat.grad *= xp.where(norm > max_norm, max_norm / (norm + 1e-6), xp.ones_like(norm))
            return norm

    # -- checkpoints: state as {"<param index>.<slot>": array} --------------------
    def state_arrays(self) -> dict:
        """{"<param index>.<slot>": device array (a view)} once the state exists."""
        if not self.state:
            return {}
        return {f"{i}.{k}": self.flat.view(a, i) for k, a in self.state.items() for i in range(len(self.flat.params))}

    def load_state_arrays(self, arrays: dict, step_count: int) -> None:
        params = self.params
        parsed = []
        for key, a in arrays.items():
            i, k = key.split(".", 1)
            i = int(i)
            if not 0 <= i < len(params):
                raise ValueError(f"optimizer state names parameter {i}, the model has {len(params)}")
            if k not in self.slots:
                raise ValueError(f"optimizer state {key!r} is not one of this optimizer's ({', '.join(self.slots)})")
            if tuple(a.shape) != params[i].shape:
                raise ValueError(f"optimizer state {key!r} has shape {tuple(a.shape)}, parameter has {params[i].shape}")
            parsed.append((i, k, a))
        from ..nn.module import as_param_array

        with self.flat.backend.activate():
            self.state = {}
            self._make_state()
            for i, k, a in parsed:
                self.flat.view(self.state[k], i)[...] = as_param_array(a, params[i])
        self.step_count = int(step_count)


def check_setting(name: str, v, low: float = 0.0, below: float | None = None, above_low: bool = False) -> float:
    """v as a float if it is a finite number >= low (> low with above_low) and < below; else a ConfigError."""
    ok = isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)
    ok = ok and (v > low if above_low else v >= low) and (below is None or v < below)
    if not ok:
        span = f"in [{low:g}, {below:g})" if below is not None else f"{'>' if above_low else '>='} {low:g}"
        raise ConfigError(f"{name} must be a finite number {span}, got {v!r}")
    return float(v)


def check_betas(betas) -> tuple:
    try:
        b1, b2 = betas
    except (TypeError, ValueError):
        raise ConfigError(f"betas must be two numbers in [0, 1), e.g. (0.9, 0.999), got {betas!r}") from None
    return check_setting("beta1 (betas[0])", b1, below=1.0), check_setting("beta2 (betas[1])", b2, below=1.0)


def check_params(params: list) -> None:
    """The tensors an optimizer may update: at least one, each a leaf Tensor, each once."""
    if not params:
        raise ConfigError("the optimizer got no parameters to update; pass model.parameters() "
                          "(or tensors made with requires_grad=True)")
    for p in params:
        if not isinstance(p, Tensor):
            raise ConfigError(f"an optimizer updates Tensors (a model's parameters, or tensors made with "
                              f"requires_grad=True), got {type(p).__name__}")
        if p.backend.dtype_name(p.dtype) not in ("float32", "float64"):
            raise ConfigError(f"an optimizer updates float tensors, got a {p.backend.dtype_name(p.dtype)} one")
        if not p.is_leaf:
            raise ConfigError("an optimizer cannot update a tensor computed from others; give it the leaf "
                              "tensors (made with requires_grad=True) the computation starts from")
    if len({id(p) for p in params}) != len(params):
        raise ConfigError("a parameter appears twice in the optimizer's groups")


class SGD(Optimizer):
    """p -= lr * (g + wd p), with optional (heavy-ball) momentum."""

    def __init__(self, params, lr: float = 0.01, momentum: float = 0.0, weight_decay: float = 0.0):
        momentum = check_setting("momentum", momentum)
        super().__init__(params, lr, weight_decay)
        self.momentum = momentum
        self.slots = ("momentum",) if momentum else ()

    def _update(self, p, g, state, wd):
        if wd:
            g = g + wd * p
        if self.momentum:
            buf = state["momentum"]  # starts at zero: the first step's buffer is g itself
            buf *= self.momentum
            buf += g
            g = buf
        p -= self.lr * g


class Adam(Optimizer):
    """Adam; weight decay, if any, is L2 added to the gradient (coupled)."""

    decoupled = False
    slots = ("m", "v")

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0):
        betas, eps = check_betas(betas), check_setting("eps", eps, above_low=True)
        super().__init__(params, lr, weight_decay)
        self.betas, self.eps = betas, eps

    def _update(self, p, g, state, wd):
        b1, b2 = self.betas
        t = self.step_count
        m, v = state["m"], state["v"]
        fast = self.flat.backend.fast
        if fast is not None and hasattr(fast, "adam_step"):
            fast.adam_step(p, g, m, v, self.lr, b1, b2, self.eps, wd, t, self.decoupled)
            return
        xp = self.flat.backend.xp
        if wd and not self.decoupled:
            g = g + wd * p
        m *= b1
        m += (1.0 - b1) * g
        v *= b2
        v += (1.0 - b2) * (g * g)
        bc1 = 1.0 - b1 ** t
        bc2 = 1.0 - b2 ** t
        step = (self.lr / bc1) * m / (xp.sqrt(v) / math.sqrt(bc2) + self.eps)
        if wd and self.decoupled:
            p *= 1.0 - self.lr * wd
        p -= step


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter)."""

    decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.01):
        super().__init__(params, lr, betas, eps, weight_decay)


def decay_groups(model, weight_decay: float) -> list:
    """Param groups: decay on matrices (2-D+), none on biases and norm gains."""
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(name: str, model, lr: float, betas=(0.9, 0.999), weight_decay: float = 0.0) -> Optimizer:
    """The optimizer called name ("adamw", "adam", or "sgd" with momentum betas[0]) over model's parameters,
    no decay on biases and norm gains: what --optimizer picks, as make_schedule does for --schedule."""
    groups = decay_groups(model, weight_decay)
    if name == "adamw":
        return AdamW(groups, lr=lr, betas=betas, weight_decay=weight_decay)
    if name == "adam":
        return Adam(groups, lr=lr, betas=betas, weight_decay=weight_decay)
    return SGD(groups, lr=lr, momentum=betas[0], weight_decay=weight_decay)


SQUARES_CHUNK = 1 << 12


def sum_squares(xp, a):
    """sum(a * a) of a 1-D array as a device scalar, in chunks of SQUARES_CHUNK whose sums are then added:
    one float32 dot over GPT-2's 124M gradients came out 1.2e-3 low (BLAS adds each lane's ~8M squares
    into one float32), enough to move Adam's first step by 3e-4 of lr (docs/speed.md); chunked, ~1e-7
    (torch's dot adds a row in order: 4,096 keeps it near 5e-6)."""
    n = a.shape[0]
    head = n - n % SQUARES_CHUNK
    rows = xp.reshape(a[:head], (head // SQUARES_CHUNK, SQUARES_CHUNK))  # (0, CHUNK) when small: same calls
    return xp.sum(xp.vecdot(rows, rows)) + xp.vecdot(a[head:], a[head:])


def clip_grad_norm(params, max_norm: float) -> float:
    """Scale all gradients so their global L2 norm is at most max_norm; returns the norm before
    (one host read). A training loop keeps the norm on the device: Optimizer.clip_grad_norm."""
    params = [p for p in params if p.grad is not None]
    if not params:
        return 0.0
    be = params[0].backend
    xp = be.xp
    with be.activate():
        sq = [sum_squares(xp, xp.reshape(p.grad, (-1,))) for p in params]
        total = math.sqrt(float(be.to_host(xp.sum(xp.stack(sq)))))
        if max_norm is not None and max_norm > 0 and total > max_norm:
            scale = max_norm / (total + 1e-6)
            for p in params:
                if p.grad is getattr(p, "grad_buffer", None):
                    p.grad *= scale  # the optimizer's flat buffer: scale in place
                else:
                    p.grad = p.grad * scale  # the array may be shared with another leaf
    return total
