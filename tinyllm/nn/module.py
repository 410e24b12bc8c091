"""Module / Parameter tree: named parameters, state dicts, train/eval, devices."""
from __future__ import annotations

from backends import RNG, backend_of, get_backend

from ..random import next_seed
from ..autograd import Tensor, default_backend


class Parameter(Tensor):
    """A Tensor a Module trains (requires_grad is on).

    grad_buffer (a Tensor slot): set by an optimizer that keeps all gradients in one flat array;
    backward() then writes this parameter's gradient into that view, in place.
    """

    __slots__ = ()

    def __init__(self, data, device=None, dtype=None):
        super().__init__(data, device=device, dtype=dtype, requires_grad=True)
        self.grad_buffer = None


def default_rng(rng: RNG | None) -> RNG:
    """rng, or (None) a generator on the default device seeded from the global generator
    (tinyllm.manual_seed): layers built without an rng each get their own weights."""
    return rng if rng is not None else default_backend().rng(next_seed())


class Module:
    """Base class: attributes that are Parameters, Modules or ModuleLists form the tree."""

    training: bool = True

    def forward(self, *args, **kwargs):
        raise NotImplementedError

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # -- the tree -------------------------------------------------------------
    def _children(self):
        for name, v in vars(self).items():
            if isinstance(v, (Parameter, Module)):
                yield name, v

    def named_parameters(self, prefix: str = ""):
        """(dotted name, Parameter), each Parameter once (tied weights appear under their first name)."""
        seen = set()
        stack = [(prefix, self)]
        out = []
        while stack:
            pre, mod = stack.pop(0)
            for name, v in mod._children():
                full = f"{pre}{name}"
                if isinstance(v, Parameter):
                    if id(v) not in seen:
                        seen.add(id(v))
                        out.append((full, v))
                else:
                    stack.append((full + ".", v))
        return out

    def parameters(self) -> list:
        return [p for _, p in self.named_parameters()]

    def modules(self):
        out, stack = [], [self]
        while stack:
            m = stack.pop()
            out.append(m)
            stack.extend(v for _, v in m._children() if isinstance(v, Module))
        return out

    def num_parameters(self) -> int:
        return sum(p.size for p in self.parameters())

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    # -- modes and devices ------------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        for m in self.modules():
            m.training = mode
        return self

    def eval(self) -> "Module":
        return self.train(False)

    @property
    def backend(self):
        ps = self.parameters()
        return ps[0].backend if ps else default_backend()

    def to(self, device) -> "Module":
        """Move every parameter to `device`, in place (tied weights stay tied), copying
        through the host explicitly. Make the optimizer after moving the model."""
        b = get_backend(device)
        for p in self.parameters():
            if p.backend != b:
                p.data = b.copy_from(p.data, p.backend)
                p.backend = b
                p.grad = p.grad_buffer = None
        return self

    # -- state --------------------------------------------------------------------
    def state_dict(self) -> dict:
        """{name: device array}, one entry per distinct Parameter."""
        return {n: p.data for n, p in self.named_parameters()}

    def load_state_dict(self, state: dict) -> None:
        """Copy arrays (host, or on any device) into the parameters, in place; names and
        shapes must match exactly."""
        params = dict(self.named_parameters())
        missing = sorted(set(params) - set(state))
        unexpected = sorted(set(state) - set(params))
        if missing or unexpected:
            raise ValueError(f"state dict does not match the model: missing {missing}, unexpected {unexpected}")
        for n, p in params.items():
            a = state[n]
            if tuple(a.shape) != p.shape:
                raise ValueError(f"state dict tensor {n!r} has shape {tuple(a.shape)}, the model expects {p.shape}")
        for n, p in params.items():
            with p.backend.activate():
                p.data[...] = as_param_array(state[n], p)  # in place: an optimizer's flat buffer keeps its views
            p.grad = None


def as_param_array(a, p: Parameter):
    """a (a host array, or an array on any device) as an array on p's device with p's dtype."""
    b = p.backend
    if not b.is_array(a):
        owner = backend_of(a)
        if owner is not None and owner.kind != "cpu":
            a = b.copy_from(a, owner)  # another device's array: explicitly through the host
        else:
            return b.from_host(a, b.dtype_name(p.dtype))
    return a if a.dtype == p.dtype else b.xp.astype(a, p.dtype)


class ModuleList(Module):
    """A list of Modules whose parameters belong to the parent."""

    def __init__(self, modules):
        for i, m in enumerate(modules):
            setattr(self, str(i), m)
        self._n = len(modules)

    def __iter__(self):
        return (getattr(self, str(i)) for i in range(self._n))

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i):
        return getattr(self, str(i % self._n))
