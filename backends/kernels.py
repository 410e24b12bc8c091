"""The signatures of fused kernels, written down once: an op in tinyllm/ops that can be fused looks
its kernel up by name (tinyllm/ops/kernels.py), the backend's own in `Backend.fast` if it has one,
else the op's standard-only reference; both take the signatures below, so the op does not care
which it got. tests/test_fast_paths.py holds every kernel a fast object has to its reference.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Protocol, Tuple

Array = Any  # an array of the backend's namespace
Backward = Callable[..., Tuple[Optional[Array], ...]]


class FusedKernels(Protocol):
    """Each kernel returns the forward value and a `backward` closure that keeps what it needs;
    `backward(g)` returns one gradient per array input that can have one (None where an optional
    input was None). A backend's `fast` object may implement any subset; the ops use the reference
    for the rest."""

    def matmul(self, xp, a: Array, b: Array) -> Tuple[Array, Backward]:
        """a @ b with broadcasting over leading axes; backward(g, need=(True, True)) -> (ga, gb),
        skipping (None) the gradients `need` says are not wanted."""

    def gelu(self, xp, x: Array) -> Tuple[Array, Backward]:
        """GELU, tanh form; backward(g) -> (dx,)."""

    def softmax(self, xp, x: Array, axis: int) -> Tuple[Array, Backward]:
        """softmax over `axis`; backward(g) -> (dx,)."""

    def log_softmax(self, xp, x: Array, axis: int) -> Tuple[Array, Backward]:
        """log softmax over `axis`; backward(g) -> (dx,)."""

    def layer_norm(self, xp, x: Array, w: Optional[Array], b: Optional[Array], eps: float) -> Tuple[Array, Backward]:
        """Layer norm over the last axis, w and b (C,) optional; backward(g) -> (dx, dw or None, db or None)."""

    def rms_norm(self, xp, x: Array, w: Optional[Array], eps: float) -> Tuple[Array, Backward]:
        """RMS norm over the last axis, w (C,) optional; backward(g) -> (dx, dw or None)."""

    def cross_entropy(self, xp, z: Array, t: Array) -> Tuple[Array, Backward]:
        """Per-row -log softmax(z)[t]: z (N, V) float, t (N,) int -> loss (N,);
        backward(scale (N,)) -> (dz,), each row's gradient times its scale."""

    def attention(self, xp, q: Array, k: Array, v: Array, mask: Optional[Array],
                  scale: float) -> Tuple[Array, Backward]:
        """softmax(q k^T * scale, masked) v. q (B, nh, Tq, hs), k and v (B, nh, Tk, hs);
        mask None (every key visible) or the causal (Tq, Tk) bool mask of
        tinyllm.ops.causal_mask (True: visible, j <= i + Tk - Tq), which a kernel
        may use for its structure; backward(g) -> (dq, dk, dv)."""

    def self_attention(self, xp, qkv: Array, n_head: int, mask: Optional[Array],
                       scale: float) -> Tuple[Array, Backward]:
        """attention over the heads of one fused projection: qkv (B, T, 3C) holds q, k, v side by
        side along its last axis, each (B, T, C) with C = n_head * hs -> (B, T, C), the heads'
        outputs side by side; mask as for attention (T, T); backward(g) -> (dqkv,)."""


KERNEL_NAMES = tuple(n for n in vars(FusedKernels) if not n.startswith("_"))
