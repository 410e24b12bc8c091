"""SGD (+momentum), Adam and AdamW over Parameters' raw arrays.

Updates run on arrays outside the graph; a backend's fused fast path
(backend.fast.adamw) is used where present.
"""
from __future__ import annotations

import math


class Optimizer:
    """Keeps a list of param groups: {"params": [...], "weight_decay": float}."""

    def __init__(self, params, lr: float, weight_decay: float = 0.0):
        if lr < 0:
            raise ValueError(f"learning rate must be >= 0, got {lr}")
        params = list(params)
        if params and isinstance(params[0], dict):
            self.groups = [dict(g) for g in params]
        else:
            self.groups = [{"params": params}]
        for g in self.groups:
            g.setdefault("weight_decay", weight_decay)
        self.lr = lr
        self.step_count = 0
        self.state: dict = {}  # id(param) -> {name: array}

    @property
    def params(self) -> list:
        return [p for g in self.groups for p in g["params"]]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        self.step_count += 1
        for g in self.groups:
            for p in g["params"]:
                if p.grad is not None:
                    self._update(p, p.grad, g["weight_decay"])

    def _update(self, p, grad, wd: float) -> None:
        raise NotImplementedError

    # -- checkpoints: state as {"<param index>.<slot>": array} --------------------
    def state_arrays(self) -> dict:
        out = {}
        for i, p in enumerate(self.params):
            for k, a in self.state.get(id(p), {}).items():
                out[f"{i}.{k}"] = a
        return out

    def load_state_arrays(self, arrays: dict, step_count: int) -> None:
        params = self.params
        self.state = {}
        for key, a in arrays.items():
            i, k = key.split(".", 1)
            i = int(i)
            if not 0 <= i < len(params):
                raise ValueError(f"optimizer state names parameter {i}, the model has {len(params)}")
            p = params[i]
            if tuple(a.shape) != p.shape:
                raise ValueError(f"optimizer state {key!r} has shape {tuple(a.shape)}, parameter has {p.shape}")
            if not p.backend.is_array(a):
                a = p.backend.from_host(a)
            self.state.setdefault(id(p), {})[k] = p.backend.xp.astype(a, p.dtype)
        self.step_count = int(step_count)


class SGD(Optimizer):
    """p -= lr * (g + wd p), with optional (heavy-ball) momentum."""

    def __init__(self, params, lr: float = 0.01, momentum: float = 0.0, weight_decay: float = 0.0):
        super().__init__(params, lr, weight_decay)
        self.momentum = momentum

    def _update(self, p, grad, wd):
        if wd:
            grad = grad + wd * p.data
        if self.momentum:
            st = self.state.setdefault(id(p), {})
            buf = st.get("momentum")
            buf = grad if buf is None else self.momentum * buf + grad
            st["momentum"] = buf
            grad = buf
        p.data = p.data - self.lr * grad


class Adam(Optimizer):
    """Adam; weight decay, if any, is L2 added to the gradient (coupled)."""

    decoupled = False

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0):
        super().__init__(params, lr, weight_decay)
        self.betas = tuple(betas)
        self.eps = eps

    def _update(self, p, grad, wd):
        b1, b2 = self.betas
        t = self.step_count
        st = self.state.setdefault(id(p), {})
        xp = p.backend.xp
        if "m" not in st:
            st["m"] = xp.zeros_like(p.data)
            st["v"] = xp.zeros_like(p.data)
        fast = p.backend.fast
        if fast is not None and hasattr(fast, "adam_step"):
            fast.adam_step(p.data, grad, st["m"], st["v"], self.lr, b1, b2, self.eps, wd, t, self.decoupled)
            return
        if wd and not self.decoupled:
            grad = grad + wd * p.data
        st["m"] = m = b1 * st["m"] + (1.0 - b1) * grad
        st["v"] = v = b2 * st["v"] + (1.0 - b2) * (grad * grad)
        bc1 = 1.0 - b1 ** t
        bc2 = 1.0 - b2 ** t
        step = (self.lr / bc1) * m / (xp.sqrt(v) / math.sqrt(bc2) + self.eps)
        data = p.data * (1.0 - self.lr * wd) if (wd and self.decoupled) else p.data
        p.data = data - step


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


def clip_grad_norm(params, max_norm: float) -> float:
    """Scale all gradients so their global L2 norm is at most max_norm; returns the norm before."""
    params = [p for p in params if p.grad is not None]
    if not params:
        return 0.0
    xp = params[0].backend.xp
    # summed on the device, one host sync (not one per parameter: each costs a GPU round trip)
    total = math.sqrt(float(sum(xp.sum(p.grad * p.grad) for p in params)))
    if max_norm is not None and max_norm > 0 and total > max_norm:
        scale = max_norm / (total + 1e-6)
        for p in params:
            p.grad = p.grad * scale
    return total
