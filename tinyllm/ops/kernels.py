"""The one seam between an op and a backend's fused kernel.

A fusable op (gelu, layer_norm, rms_norm, softmax, cross_entropy, attention,
matmul) computes its values through a kernel with the signature written down
in backends/kernels.py: `kernel(xp, *arrays, *settings) -> (out, backward)`.
Each has a reference kernel here in tinyllm/ops, beside its op, written
against the standard only (the strict backend runs nothing else); a backend
may offer a faster one under the same name in `backend.fast`.
"""
from __future__ import annotations

REFERENCE: dict = {}  # kernel name -> the standard-only reference kernel


def reference(name: str):
    """Register the decorated function as the reference kernel `name`."""
    def register(fn):
        REFERENCE[name] = fn
        return fn
    return register


def kernel(backend, name: str):
    """The backend's fused kernel `name`, or the reference when it has none."""
    return getattr(backend.fast, name, None) or REFERENCE[name]
