"""Tensor: an array that remembers how it was computed.

Each op makes an output Tensor with its parents and a `_backward(g)` closure
that returns one gradient per parent (None where a parent needs none).
`backward()` sorts the graph topologically (iteratively: deep chains are fine)
and walks it in reverse, accumulating gradients.

Dtypes are the same on every backend: Python floats (and float host arrays)
become float32, Python ints int64; an op whose result is a float (exp, mean,
division, int * 1.5, ...) promotes integer inputs to float32, the default
float dtype. Only float tensors can require gradients. Data of a dtype with no
kernels (float16, int8, complex, objects) is refused when a tensor is made.
Whether ops record a graph (no_grad) is per thread, as in PyTorch.
"""
from __future__ import annotations

import contextlib
import threading

from backends import Backend, DeviceError, backend_of, get_backend

from .errors import ShapeError

_default_backend: Backend | None = None
_backward_hook = None  # hook(run) runs one backward pass, run(); the profiler's, else None


def default_backend() -> Backend:
    global _default_backend
    if _default_backend is None:
        _default_backend = get_backend("cpu")
    return _default_backend


def set_default_device(device) -> Backend:
    """Where tensors made without a device go (initially "cpu")."""
    global _default_backend
    _default_backend = get_backend(device)
    return _default_backend


class _GradMode(threading.local):
    """Whether ops record a graph, per thread (as in PyTorch): a thread started inside no_grad records."""
    enabled = True


_mode = _GradMode()


class no_grad(contextlib.ContextDecorator):
    """Inside, ops record no graph: for evaluation and sampling. In this thread only; one object may be
    entered again while inside and reused after (the previous modes are kept on a per-thread stack)."""

    def __init__(self):
        self._saved = threading.local()

    def __enter__(self) -> "no_grad":
        stack = self._saved.__dict__.setdefault("stack", [])
        stack.append(_mode.enabled)
        _mode.enabled = False
        return self

    def __exit__(self, *exc) -> bool:
        _mode.enabled = self._saved.stack.pop()
        return False


def is_grad_enabled() -> bool:
    return _mode.enabled


def set_backward_hook(hook):
    """Route every backward() pass through hook(run) (run() does the pass); returns the previous hook."""
    global _backward_hook
    prev, _backward_hook = _backward_hook, hook
    return prev


class Tensor:
    # grad_buffer: set by an optimizer that keeps all gradients in one flat array (optim/flat.py);
    # backward() then writes this leaf's gradient into that view, in place. Unset otherwise.
    __slots__ = ("data", "grad", "grad_buffer", "requires_grad", "backend", "_parents", "_backward", "__weakref__")
    # numpy_array + tensor: NumPy defers to Tensor.__radd__ instead of building an object array
    __array_ufunc__ = None

    def __init__(self, data, device=None, dtype=None, requires_grad: bool = False):
        if isinstance(data, Tensor):
            data = data.data
        if data is None:
            raise TypeError("tensor() needs numbers (a number, a nested list or an array), got None")
        backend = get_backend(device) if device is not None else None
        owner = backend_of(data)
        if backend is None:
            backend = owner or default_backend()
        elif owner is not None and owner != backend and owner.kind != "cpu":  # another device's array
            data = backend.copy_from(data, owner)
        if not backend.is_array(data):
            if dtype is None:
                dtype = _infer_dtype(data, backend)
            data = backend.from_host(data, dtype)
        elif dtype is not None:
            data = backend.xp.astype(data, backend.dtype(dtype))
        else:
            _check_dtype(data.dtype, backend)  # a device array (a NumPy one on cpu) is taken as it is
        if requires_grad and not (data.dtype == backend.xp.float32 or data.dtype == backend.xp.float64):
            raise TypeError(f"only float tensors can require gradients, this one is "
                            f"{backend.dtype_name(data.dtype)}; pass dtype='float32'")
        self.data = data
        self.backend = backend
        self.grad = None
        self.requires_grad = requires_grad
        self._parents = ()
        self._backward = None

    # -- the seam with tinyllm/ops ---------------------------------------------
    @classmethod
    def from_op(cls, data, backend, parents=(), backward=None) -> "Tensor":
        """An op's result: `data` (an array on backend's device, taken as is: no checks, no copy)
        recorded with its parents and `backward(g) -> one gradient per parent` while gradients
        are on and a parent requires one. Without parents, a constant tensor over `data`."""
        out = cls.__new__(cls)
        out.data = data
        out.backend = backend
        out.grad = None
        out._parents = ()
        out._backward = None
        out.requires_grad = False
        if backward is not None and _mode.enabled:
            if any(p.requires_grad for p in parents):
                out.requires_grad = True
                out._parents = parents
                out._backward = backward
        return out

    # -- properties -------------------------------------------------------------
    @property
    def xp(self):
        return self.backend.xp

    @property
    def shape(self) -> tuple:
        return tuple(self.data.shape)

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def device(self) -> str:
        return self.backend.name

    @property
    def is_leaf(self) -> bool:
        """True unless an op recorded this tensor with parents (only leaves keep .grad)."""
        return not self._parents

    @property
    def size(self) -> int:
        n = 1
        for s in self.data.shape:
            n *= s
        return n

    def __len__(self) -> int:
        return self.data.shape[0]

    def __bool__(self) -> bool:
        if self.size != 1:
            raise ValueError(f"the truth value of a tensor with {self.size} elements is ambiguous (as in NumPy); "
                             f"reduce it first, e.g. bool(t.max().item())")
        return bool(self.backend.to_host(self.data).reshape(-1)[0])

    def __repr__(self) -> str:
        g = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor(shape={self.shape}, dtype={self.backend.dtype_name(self.dtype)}, device={self.device}{g})"

    # -- conversion --------------------------------------------------------------
    def numpy(self):
        """A host NumPy copy of the data (for users and plotting)."""
        return self.backend.to_host(self.data)

    def item(self) -> float:
        if self.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return float(self.backend.to_host(self.data).reshape(-1)[0])

    def tolist(self):
        return self.numpy().tolist()

    def to(self, device) -> "Tensor":
        """A copy on another device (a leaf: no graph is carried over)."""
        b = get_backend(device)
        if b == self.backend:
            return self
        return Tensor(b.copy_from(self.data, self.backend), device=b, requires_grad=self.requires_grad)

    def detach(self) -> "Tensor":
        return Tensor.from_op(self.data, self.backend)

    def zero_grad(self) -> None:
        self.grad = None

    # -- autograd ---------------------------------------------------------------
    def backward(self, grad=None) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's .grad.

        Gradients of intermediate tensors are freed as soon as they have been
        passed on (only leaves keep .grad), which bounds memory by the graph.
        """
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad (made under no_grad, or from constants)")
        with self.backend.activate():  # the backward closures launch kernels on this device
            if _backward_hook is None:
                self._backward_on_device(grad)
            else:
                _backward_hook(lambda: self._backward_on_device(grad))

    def _backward_on_device(self, grad) -> None:
        grad = self._seed(grad)
        if self._backward is None:  # backward() on a leaf: its gradient is the seed
            _accumulate(self, grad, set())
            return
        topo = self._topo()
        grads = {id(self): grad}
        owned = set()  # ids of sums this loop made: nobody else holds them, add in place
        mine = set()  # ids of leaves whose .grad this pass made (no one else holds it): added into in place
        for node in reversed(topo):
            g = grads.pop(id(node), None)
            if g is None:
                continue
            owned.discard(id(g))
            for p, pg in zip(node._parents, node._backward(g)):
                if pg is None or not p.requires_grad:
                    continue
                if p._backward is None:  # a leaf: nothing below it waits, so its gradient is added at once
                    _accumulate(p, pg, mine)
                    continue
                if isinstance(pg, (RowGrad, ProductGrad)):  # an op below needs the whole array
                    pg = pg.dense(p.backend)
                    owned.add(id(pg))
                k = id(p)
                prev = grads.get(k)
                if prev is None:
                    grads[k] = pg
                elif id(prev) in owned and prev.dtype == pg.dtype and prev.shape == pg.shape:
                    p.backend.add_into(prev, pg)
                else:
                    total = prev + pg
                    owned.add(id(total))
                    grads[k] = total

    def _seed(self, grad):
        """backward's starting gradient d(self)/d(self) as an array shaped, typed and placed like self: ones
        when None; host data (a number, a list, a NumPy array) converted; another device's data refused."""
        be, xp = self.backend, self.xp
        if grad is None:
            if self.size != 1:
                raise RuntimeError(f"backward() without a gradient needs a scalar, got shape {self.shape}; "
                                   f"pass one gradient per element, e.g. backward(ones of shape {self.shape})")
            return xp.ones(self.data.shape, dtype=self.data.dtype, device=be.device)
        if isinstance(grad, Tensor):
            _same_device(grad.backend, be)
            grad = grad.data
        elif not be.is_array(grad):
            owner = backend_of(grad)
            if owner is not None and owner.kind != "cpu":  # NumPy arrays are host data
                _same_device(owner, be)
            try:
                grad = be.from_host(grad)
            except (TypeError, ValueError):
                raise TypeError(f"backward(grad): grad must be numbers (a number, a list, an array or a Tensor) "
                                f"shaped like the output {self.shape}, got {type(grad).__name__}") from None
        shape = tuple(grad.shape)
        if shape != self.shape:
            if shape != () or self.size != 1:
                raise ShapeError(f"backward(grad): grad has shape {shape}, the output {self.shape}; give one "
                                 f"gradient per element of the output (a number only for a one-element output)")
            grad = xp.reshape(grad, self.data.shape)
        return grad if grad.dtype == self.dtype else xp.astype(grad, self.dtype)

    def _topo(self) -> list:
        """Post-order of the graph below self, iteratively (no recursion limit)."""
        topo, seen = [], set()
        stack = [(self, False)]
        while stack:
            node, done = stack.pop()
            if done:
                topo.append(node)
                continue
            if id(node) in seen:
                continue
            seen.add(id(node))
            stack.append((node, True))
            for p in node._parents:
                if p.requires_grad and id(p) not in seen:
                    stack.append((p, False))
        return topo

    # operators and methods (x + y, x @ w, x[i], x.sum(), x.reshape(...), x.T, x.astype) call the ops, and
    # tinyllm/ops/methods.py binds them here: this module sits below the ops and never imports them


def _same_device(owner: Backend, backend: Backend) -> None:
    if owner != backend:
        raise DeviceError(f"backward(grad): grad is on {owner.name}, the output on {backend.name}; "
                          f"move it first, e.g. grad.to({backend.name!r})")


class RowGrad:
    """A gradient that is zero but on some rows: rows[i] belongs at row indices[i] (duplicates add) of an
    array shaped `shape`. The embedding's backward returns one, so that the engine adds its rows straight
    into the weight's gradient (Backend.scatter_add, in place): no (V, C) array is made for N rows."""
    __slots__ = ("indices", "rows", "shape", "dtype")

    def __init__(self, indices, rows, shape: tuple):
        self.indices, self.rows, self.shape, self.dtype = indices, rows, tuple(shape), rows.dtype

    def add_into(self, backend: Backend, target):
        """target (shaped like the gradient) += this gradient, in place; target is returned."""
        return backend.scatter_add(target, self.indices, self.rows)

    def dense(self, backend: Backend):
        """The whole array (for a tensor whose gradient must be one)."""
        xp = backend.xp
        return self.add_into(backend, xp.zeros(self.shape, dtype=self.dtype, device=backend.device))


class ProductGrad:
    """A gradient that is the product a @ b (2-D), not made yet. A linear layer's backward returns one for
    its weight, so that the first gradient a weight gets goes straight into the optimizer's flat buffer
    (Backend.matmul_into): no (K, N) array beside the buffer and no copy into it (GPT-2's tied head: 154 MB)."""
    __slots__ = ("a", "b", "shape", "dtype")

    def __init__(self, a, b):
        self.a, self.b = a, b
        self.shape, self.dtype = (a.shape[0], b.shape[1]), a.dtype

    def write_into(self, backend: Backend, target):
        """target[...] = a @ b, made in target; target is returned."""
        return backend.matmul_into(target, self.a, self.b)

    def dense(self, backend: Backend):
        xp = backend.xp
        return self.write_into(backend, xp.empty(self.shape, dtype=self.dtype, device=backend.device))


def _accumulate(leaf: Tensor, g, mine: set) -> None:
    """leaf.grad += g (an array, a RowGrad or a ProductGrad), with no full-size temporary where it can be
    helped. A leaf whose gradient lives in an optimizer's flat buffer (leaf.grad_buffer, a view) gets g
    written there when it is the first, added in place after; `mine` holds the leaves whose .grad this pass
    made."""
    be = leaf.backend
    buf = getattr(leaf, "grad_buffer", None)
    if isinstance(g, ProductGrad):
        if buf is not None and leaf.grad is None:
            g.write_into(be, buf)
            leaf.grad = buf
            return
        g = g.dense(be)  # a fresh array: as any other from here
    if buf is not None:
        if leaf.grad is not buf:
            first = leaf.grad is None
            if first and not isinstance(g, RowGrad):
                be.copy_into(buf, g)
                leaf.grad = buf
                return
            if first:
                buf[...] = 0
            else:
                be.copy_into(buf, leaf.grad)
            leaf.grad = buf
        _add(be, buf, g)
    elif id(leaf) in mine:
        _add(be, leaf.grad, g)
    elif not isinstance(g, RowGrad):  # g may be held elsewhere too (an op hands one array to several parents)
        leaf.grad = g if leaf.grad is None else leaf.grad + g
        if leaf.grad is not g:
            mine.add(id(leaf))
    else:
        xp = be.xp
        base = (xp.zeros(g.shape, dtype=g.dtype, device=be.device) if leaf.grad is None
                else xp.asarray(leaf.grad, copy=True))
        leaf.grad = _add(be, base, g)
        mine.add(id(leaf))


def _add(be: Backend, target, g):
    """target += g in place (g dense or a RowGrad); target is returned."""
    if isinstance(g, RowGrad):
        return g.add_into(be, target)
    return be.add_into(target, g)


def _dtype_label(dt) -> str:
    """'float16' for NumPy's, CuPy's and array-api-strict's float16 alike."""
    return getattr(dt, "name", None) or str(dt).rsplit(".", 1)[-1]


def _check_dtype(dt, backend: Backend) -> None:
    """Refuse data of a dtype tinyllm has no kernels for (float16, int8, complex, objects), naming those it has."""
    label = _dtype_label(dt)
    if label not in backend.dtype_names:
        raise TypeError(f"a tensor cannot hold {label} data; its dtypes are {', '.join(backend.dtype_names)}: "
                        f"convert first, or pass e.g. dtype='float32'")


def _infer_dtype(data, backend: Backend) -> str:
    """Python ints (and lists of them) -> int64, everything else -> float32; a host array of a dtype
    tinyllm has no kernels for, or complex numbers, are refused."""
    x = data
    while isinstance(x, (list, tuple)) and x:
        x = x[0]
    if isinstance(x, bool):
        return "bool"
    if isinstance(x, int):
        return "int64"
    if isinstance(x, complex):
        _check_dtype("complex128", backend)
    if getattr(data, "dtype", None) is not None:
        _check_dtype(data.dtype, backend)
    kind = getattr(getattr(data, "dtype", None), "kind", None)
    if kind in ("i", "u"):
        return "int64"
    if kind == "b":
        return "bool"
    return "float32"


def tensor(data, device=None, dtype=None, requires_grad: bool = False) -> Tensor:
    """Make a Tensor from a list, NumPy array or device array (float32 by default)."""
    return Tensor(data, device=device, dtype=dtype, requires_grad=requires_grad)

