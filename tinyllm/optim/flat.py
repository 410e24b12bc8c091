"""One flat array for all of an optimizer's parameters, one for their gradients.

Each Parameter's .data becomes a view of its slice of the flat parameter array,
and its .grad_buffer a view of its slice of the flat gradient array, which
backward() fills in place (as fused optimizers do). An update or a clip is
then a handful of whole-array calls however many parameter tensors there are.
Views rely on basic slicing and `reshape(copy=False)` sharing memory, which
holds in NumPy, CuPy and array-api-strict.
"""
from __future__ import annotations

from backends import DeviceError


class FlatParams:
    """params (one backend, one dtype) laid out in order; `segments` are contiguous runs of them."""

    def __init__(self, params: list):
        self.params = params
        self.backend = be = params[0].backend
        self.dtype = params[0].dtype
        for p in params:
            if p.backend != be:
                raise DeviceError(f"an optimizer's parameters must share one device; got {be.name} and "
                                  f"{p.backend.name} (move the model with Module.to first)")
            if p.dtype != self.dtype:
                raise TypeError(f"an optimizer's parameters must share one dtype; got {be.dtype_name(self.dtype)} "
                                f"and {be.dtype_name(p.dtype)}")
        self.offsets, n = [], 0
        for p in params:
            self.offsets.append(n)
            n += p.size
        self.total = n
        with be.activate():
            self.data = self.zeros()
            self.grad = self.zeros()
            self._views = [None] * len(params)
            for i, p in enumerate(params):
                self._adopt(i)
                p.grad_buffer = self.view(self.grad, i)
                p.grad = None

    def zeros(self):
        xp = self.backend.xp
        return xp.zeros((self.total,), dtype=self.dtype, device=self.backend.device)

    def view(self, flat, i: int):
        """Parameter i's slice of a flat array, shaped like the parameter."""
        p, off = self.params[i], self.offsets[i]
        return self.backend.xp.reshape(flat[off:off + p.size], p.shape, copy=False)

    def split_host(self, host) -> list:
        """A host copy of a flat array -> one host array per parameter, shaped like it."""
        return [host[off:off + p.size].reshape(p.shape) for p, off in zip(self.params, self.offsets)]

    def span(self, i: int, j: int) -> slice:
        """The flat slice holding parameters i..j-1."""
        bounds = self.offsets + [self.total]
        return slice(bounds[i], bounds[j])

    def _adopt(self, i: int) -> None:
        """Copy parameter i's current data into the flat array and make .data the view."""
        p = self.params[i]
        self.data[self.offsets[i]:self.offsets[i] + p.size] = self.backend.xp.reshape(p.data, (-1,))
        p.data = self._views[i] = self.view(self.data, i)

    def sync(self) -> None:
        """Re-adopt parameters whose .data or .grad was replaced since the last step (a user assigned
        p.data, or set p.grad to an array of its own); zero array calls when nothing changed."""
        for i, p in enumerate(self.params):
            if p.backend != self.backend:
                raise DeviceError(f"a parameter moved to {p.backend.name} after its optimizer was made on "
                                  f"{self.backend.name}; make the optimizer after Module.to")
            if p.data is not self._views[i]:
                self._adopt(i)
            if p.grad_buffer is None:
                p.grad_buffer = self.view(self.grad, i)
            if p.grad is not None and p.grad is not p.grad_buffer:
                p.grad_buffer[...] = p.grad
                p.grad = p.grad_buffer
