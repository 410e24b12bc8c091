"""Numerical gradient check: central differences in float64 against backward()."""
from __future__ import annotations

from dataclasses import dataclass, field

from .autograd import Tensor, no_grad


@dataclass
class GradcheckResult:
    ok: bool
    max_abs_err: float = 0.0
    worst: dict = field(default_factory=dict)  # input, index, analytic, numeric
    checked: int = 0

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        w = self.worst
        if not w:
            return f"{'ok' if self.ok else 'FAIL'}: nothing to check"
        return (f"{'ok' if self.ok else 'FAIL'}: {self.checked} elements, worst at input {w['input']} "
                f"index {w['index']}: analytic {w['analytic']:.6e} numeric {w['numeric']:.6e} "
                f"(abs err {self.max_abs_err:.2e})")


def _scalar(out, weights) -> Tensor:
    """Reduce any output to a scalar with fixed random weights (catches every element)."""
    if out.size == 1:
        return out.reshape(())
    return (out * weights).sum()


def gradcheck(fn, *inputs: Tensor, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
              seed: int = 0) -> GradcheckResult:
    """Compare backward() with central differences for every input that requires grad.

    Inputs should be float64. Passes when |analytic - numeric| <= atol + rtol*|numeric|
    everywhere; the result names the worst element either way.
    """
    for t in inputs:
        if t.requires_grad and t.backend.dtype_name(t.dtype) != "float64":
            raise ValueError("gradcheck needs float64 inputs (float32 central differences are noise)")
    for t in inputs:
        t.grad = None
    out = fn(*inputs)
    backend = out.backend
    xp = backend.xp
    weights = backend.rng(seed).normal(out.shape, dtype="float64") if out.size != 1 else None
    _scalar(out, weights).backward()

    def loss_value() -> float:
        with no_grad():
            return float(_scalar(fn(*inputs), weights).item())

    res = GradcheckResult(ok=True, max_abs_err=0.0)
    with backend.activate():  # the perturbations below write device arrays
        _compare(inputs, loss_value, xp, backend, eps, atol, rtol, res)
    return res


def _compare(inputs, loss_value, xp, backend, eps, atol, rtol, res) -> None:
    worst_excess = -1.0
    for k, t in enumerate(inputs):
        if not t.requires_grad:
            continue
        shape = t.data.shape
        n = 1
        for s in shape:
            n *= s
        analytic = backend.to_host(xp.reshape(t.grad, (-1,))) if t.grad is not None else [0.0] * n
        flat = xp.reshape(t.data, (-1,))
        host = backend.to_host(flat)
        flat = xp.asarray(flat, copy=True)
        for i in range(n):
            orig = float(host[i])
            flat[i] = orig + eps
            t.data = xp.reshape(flat, shape)
            up = loss_value()
            flat[i] = orig - eps
            t.data = xp.reshape(flat, shape)
            down = loss_value()
            flat[i] = orig
            t.data = xp.reshape(flat, shape)
            numeric = (up - down) / (2 * eps)
            a = float(analytic[i])
            err = abs(a - numeric)
            excess = err - (atol + rtol * abs(numeric))
            res.checked += 1
            if excess > worst_excess:
                worst_excess = excess
                res.worst = {"input": k, "index": _unravel(i, shape), "analytic": a, "numeric": numeric}
            res.max_abs_err = err if err > res.max_abs_err else res.max_abs_err
            if excess > 0:
                res.ok = False


def _unravel(i: int, shape) -> tuple:
    idx = []
    for s in reversed(tuple(shape)):
        idx.append(i % s)
        i //= s
    return tuple(reversed(idx))
