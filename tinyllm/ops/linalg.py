"""Matrix multiply, 2-D and batched with broadcasting over leading axes."""
from __future__ import annotations

from ..errors import ShapeError
from ..autograd import ProductGrad, Tensor
from ._util import as_float, broadcasts, is_float, lift, unbroadcast
from .kernels import kernel, reference
from .registry import op


@reference("matmul")
def matmul_kernel(xp, a, b):
    if a.ndim > 2 and b.ndim == 2:
        # (B, T, K) @ (K, N): fold the batch into rows; one big matmul is several
        # times faster than the per-matrix loop a stacked matmul runs
        return _folded_matmul(xp, a, b)

    def backward(g, need=(True, True)):
        ga = unbroadcast(xp, g @ xp.matrix_transpose(b), a.shape) if need[0] else None
        gb = unbroadcast(xp, xp.matrix_transpose(a) @ g, b.shape) if need[1] else None
        return ga, gb

    return a @ b, backward


def _folded_matmul(xp, a, b):
    """(..., K) @ (K, N) as one (rows, K) @ (K, N) matmul, forward and backward."""
    lead = tuple(a.shape[:-1])
    k, n = b.shape
    a2 = xp.reshape(a, (-1, k))  # (rows, K)

    def backward(g, need=(True, True)):
        g2 = xp.reshape(g, (-1, n))  # (rows, N)
        ga = xp.reshape(g2 @ xp.matrix_transpose(b), lead + (k,)) if need[0] else None
        gb = xp.matrix_transpose(a2) @ g2 if need[1] else None
        return ga, gb

    return xp.reshape(a2 @ b, lead + (n,)), backward


@op
def matmul(a: Tensor, b: Tensor) -> Tensor:
    like = a if isinstance(a, Tensor) else b
    a, b = lift(a, like), lift(b, like)
    if a.ndim < 2 or b.ndim < 2:
        raise ShapeError(f"matmul: {a.shape} @ {b.shape}: needs 2-D or batched operands")
    if a.shape[-1] != b.shape[-2]:
        raise ShapeError(f"matmul: {a.shape} @ {b.shape}: the inner sizes {a.shape[-1]} and {b.shape[-2]} differ")
    if is_float(a) != is_float(b):  # an integer operand takes the float one's dtype
        a, b = (as_float(a, b), b) if is_float(b) else (a, as_float(b, a))
    try:
        out, kernel_backward = kernel(like.backend, "matmul")(like.xp, a.data, b.data)
    except Exception:
        if broadcasts(a.shape[:-2], b.shape[:-2]):
            raise
        raise ShapeError(f"matmul: {a.shape} @ {b.shape}: the batch axes do not broadcast") from None
    return Tensor.from_op(out, a.backend, (a, b),
                        lambda g: kernel_backward(g, (a.requires_grad, b.requires_grad)))


@op
def linear(x: Tensor, w: Tensor, b: Tensor | None = None, transpose_w: bool = False) -> Tensor:
    """x @ w + b: (..., K) @ (K, N) + (N,); transpose_w: w is (N, K) (PyTorch's layout, a tied embedding's)
    and x @ w.T is taken. One op with one output: the bias goes into the product in place (matmul then add
    kept both (..., N) arrays in the graph: 340 MB of GPT-2 small's peak), and w's gradient is a ProductGrad,
    which the engine writes straight into the optimizer's flat buffer. Operands that are not float tensors
    of one dtype take matmul (and add)."""
    if not _fusable(x, w, b, transpose_w):
        y = matmul(x, w.T if transpose_w else w)
        return y if b is None else y + b
    xp = x.xp
    wk = xp.matrix_transpose(w.data) if transpose_w else w.data  # (K, N)
    out, mm_backward = kernel(x.backend, "matmul")(xp, x.data, wk)  # (..., N), a fresh array
    if b is not None:
        out += b.data
    k, n = wk.shape

    def backward(g):
        gx = mm_backward(g, (x.requires_grad, False))[0]
        gw = None
        if w.requires_grad:
            x2, g2 = xp.reshape(x.data, (-1, k)), xp.reshape(g, (-1, n))  # (rows, K), (rows, N)
            gw = ProductGrad(xp.matrix_transpose(g2), x2) if transpose_w else ProductGrad(xp.matrix_transpose(x2), g2)
        if b is None:
            return gx, gw
        return gx, gw, unbroadcast(xp, g, b.shape) if b.requires_grad else None

    return Tensor.from_op(out, x.backend, (x, w) if b is None else (x, w, b), backward)


def _fusable(x, w, b, transpose_w: bool) -> bool:
    if not (isinstance(x, Tensor) and isinstance(w, Tensor) and w.ndim == 2 and x.ndim >= 2 and is_float(x)):
        return False
    k, n = (w.shape[1], w.shape[0]) if transpose_w else w.shape
    same = x.dtype == w.dtype and (b is None or isinstance(b, Tensor) and b.dtype == x.dtype and b.shape == (n,))
    return same and x.shape[-1] == k
