"""self_attention (the GPT block's attention over one fused qkv projection) is attention over
the heads split out of it and joined again: the same values and gradients on every backend,
and shapes that do not split are refused with the shapes named."""
import numpy as np
import pytest

from tinyllm import Tensor
from tinyllm import ops as F
from tinyllm.ops import ShapeError


def _split_attend_join(qkv, n_head, causal):
    B, T, C3 = qkv.shape
    C = C3 // 3
    parts = F.unbind(qkv.reshape(B, T, 3, n_head, C // n_head), axis=2)
    q, k, v = (p.permute(0, 2, 1, 3) for p in parts)  # (B, nh, T, hs)
    return F.attention(q, k, v, causal=causal).permute(0, 2, 1, 3).reshape(B, T, C)


@pytest.mark.parametrize("causal", [True, False], ids=["causal", "full"])
def test_equals_attention_over_split_heads(backend, causal):
    data = backend.rng(0).normal((2, 70, 3 * 12), dtype="float64")  # 70 tokens: past one CPU block
    w = backend.rng(1).normal((2, 70, 12), dtype="float64")
    results = []
    for fn in (lambda t: F.self_attention(t, 3, causal=causal), lambda t: _split_attend_join(t, 3, causal)):
        x = Tensor(data, device=backend, requires_grad=True)
        y = fn(x)
        F.sum(y * Tensor(w, device=backend)).backward()
        results.append((backend.to_host(y.data), backend.to_host(x.grad)))
    (y1, g1), (y2, g2) = results
    np.testing.assert_allclose(y1, y2, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(g1, g2, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shape,n_head,says", [
    ((2, 5, 10), 1, "(B, T, 3C)"),   # 10 is not 3C
    ((2, 5, 12), 3, "into 3 heads"),  # C = 4
    ((5, 12), 2, "(B, T, 3C)"),
])
def test_shapes_that_do_not_split_are_refused(shape, n_head, says):
    x = Tensor(np.zeros(shape, dtype=np.float32))
    with pytest.raises(ShapeError, match="self_attention") as e:
        F.self_attention(x, n_head)
    assert says in str(e.value) and str(tuple(shape)) in str(e.value)
