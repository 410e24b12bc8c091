"""unbind: a tensor's slices along one axis as separate tensors (q, k, v out of one
qkv projection), whose gradients are written into one buffer.

Taking the parts with getitem costs, in backward, one zero-filled full-size
gradient per part and the engine's sums of them (three (B, T, 3C) zero fills,
three scatters and two whole-array adds for q, k, v). Here each part's
backward writes its gradient into its slice of one buffer, and a hub tensor
between the parts and the input hands that buffer on once: only the slices
no part wrote are zero-filled. The engine runs the hub after every part
(it is their parent), so the buffer is complete by then; what each part
passes the hub is only a token (the engine adds tokens, never buffers).
"""
from __future__ import annotations

from ..autograd import Tensor
from .registry import op


@op
def unbind(x: Tensor, axis: int = 0) -> tuple:
    """x's slices along `axis`, that axis removed: (n, ...) -> n tensors of shape (...)."""
    xp, be = x.xp, x.backend
    axis %= x.ndim
    n = x.shape[axis]
    index = [(slice(None),) * axis + (i, Ellipsis) for i in range(n)]
    token = xp.zeros((), dtype=x.dtype, device=be.device)
    state = {"buf": None, "written": set()}  # this backward pass's buffer and the parts it holds

    def hand_on(_token):
        buf, written = state["buf"], state["written"]
        state["buf"], state["written"] = None, set()
        for i in range(n):
            if i not in written:  # a part that got no gradient
                buf[index[i]] = 0.0
        return (buf,)

    hub = Tensor.from_op(x.data, be, (x,), hand_on)

    def part(i: int) -> Tensor:
        def backward(g):
            if state["buf"] is None:
                state["buf"] = xp.empty(x.shape, dtype=g.dtype, device=be.device)
            state["buf"][index[i]] = g
            state["written"].add(i)
            return (token,)

        return Tensor.from_op(x.data[index[i]], be, (hub,), backward)

    return tuple(part(i) for i in range(n))
