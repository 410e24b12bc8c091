"""Optimizers against reference math written out in plain Python, schedules, clipping."""
import math

import numpy as np
import pytest

from tinyllm.nn import Linear, Parameter
from tinyllm.optim import SGD, Adam, AdamW, clip_grad_norm, decay_groups, make_schedule

GRADS = [[0.5, -1.0, 2.0], [0.1, 0.3, -0.2], [-0.7, 0.0, 1.5]]
P0 = [1.0, -2.0, 0.5]


def run(opt_cls, backend, **kw):
    p = Parameter(backend.from_host(P0, "float64"))
    opt = opt_cls([p], **kw)
    for g in GRADS:
        p.grad = backend.from_host(g, "float64")
        opt.step()
    return backend.to_host(p.data)


def ref_sgd(lr, momentum=0.0, wd=0.0):
    p, buf = list(P0), None
    for g in GRADS:
        g = [gi + wd * pi for gi, pi in zip(g, p)]
        if momentum:
            buf = g if buf is None else [momentum * b + gi for b, gi in zip(buf, g)]
            g = buf
        p = [pi - lr * gi for pi, gi in zip(p, g)]
    return p


def ref_adam(lr, b1, b2, eps, wd, decoupled):
    p, m, v = list(P0), [0.0] * 3, [0.0] * 3
    for t, g in enumerate(GRADS, start=1):
        out = []
        for i in range(3):
            gi = g[i] + (0.0 if decoupled else wd * p[i])
            m[i] = b1 * m[i] + (1 - b1) * gi
            v[i] = b2 * v[i] + (1 - b2) * gi * gi
            mhat, vhat = m[i] / (1 - b1 ** t), v[i] / (1 - b2 ** t)
            pi = p[i] * (1 - lr * wd) if decoupled else p[i]
            out.append(pi - lr * mhat / (math.sqrt(vhat) + eps))
        p = out
    return p


def test_sgd(backend):
    np.testing.assert_allclose(run(SGD, backend, lr=0.1), ref_sgd(0.1), rtol=1e-12)
    np.testing.assert_allclose(run(SGD, backend, lr=0.1, momentum=0.9), ref_sgd(0.1, 0.9), rtol=1e-12)
    np.testing.assert_allclose(run(SGD, backend, lr=0.1, weight_decay=0.01), ref_sgd(0.1, wd=0.01), rtol=1e-12)


def test_adam_and_adamw(backend):
    kw = dict(lr=0.01, betas=(0.9, 0.99), eps=1e-8)
    np.testing.assert_allclose(run(Adam, backend, **kw), ref_adam(0.01, 0.9, 0.99, 1e-8, 0.0, False), rtol=1e-6)
    np.testing.assert_allclose(run(Adam, backend, weight_decay=0.1, **kw),
                               ref_adam(0.01, 0.9, 0.99, 1e-8, 0.1, False), rtol=1e-6)
    np.testing.assert_allclose(run(AdamW, backend, weight_decay=0.1, **kw),
                               ref_adam(0.01, 0.9, 0.99, 1e-8, 0.1, True), rtol=1e-6)
    # decoupled decay differs from L2 decay
    assert not np.allclose(run(AdamW, backend, weight_decay=0.1, **kw), run(Adam, backend, weight_decay=0.1, **kw))


def test_optimizer_state_round_trip_continues_identically(backend):
    def make():
        p = Parameter(backend.from_host(P0, "float32"))
        return p, AdamW([p], lr=0.01)

    p, opt = make()
    for g in GRADS[:2]:
        p.grad = backend.from_host(g, "float32")
        opt.step()
    arrays = {k: backend.to_host(a) for k, a in opt.state_arrays().items()}
    q, opt2 = make()
    q.data = backend.from_host(backend.to_host(p.data))
    opt2.load_state_arrays(arrays, opt.step_count)
    for par, o in ((p, opt), (q, opt2)):
        par.grad = backend.from_host(GRADS[2], "float32")
        o.step()
    np.testing.assert_array_equal(backend.to_host(p.data), backend.to_host(q.data))
    with pytest.raises(ValueError, match="shape"):
        opt2.load_state_arrays({"0.m": np.zeros(5, np.float32)}, 1)


def test_decay_groups_skip_biases_and_gains():
    lin = Linear(3, 4)
    groups = decay_groups(lin, 0.1)
    assert [p.shape for p in groups[0]["params"]] == [(3, 4)] and groups[0]["weight_decay"] == 0.1
    assert [p.shape for p in groups[1]["params"]] == [(4,)] and groups[1]["weight_decay"] == 0.0


def test_schedules():
    cos = make_schedule("cosine", 1e-3, max_steps=1000, warmup=100, min_lr=1e-4)
    assert cos(0) == pytest.approx(1e-5)
    assert cos(99) == pytest.approx(1e-3)
    assert cos(100) == pytest.approx(1e-3)
    assert cos(550) == pytest.approx(1e-4 + 0.5 * 9e-4)  # half way through the cosine
    assert cos(1000) == pytest.approx(1e-4) and cos(5000) == pytest.approx(1e-4)
    assert all(cos(s) >= cos(s + 1) for s in range(100, 1000))
    assert make_schedule("cosine", 1e-3, 100)(100) == pytest.approx(1e-4)  # default floor lr/10
    lin = make_schedule("linear", 0.5, 10)
    assert [lin(s) for s in (0, 5, 10, 20)] == pytest.approx([0.5, 0.25, 0.0, 0.0])
    assert make_schedule("constant", 0.3, 10)(7) == 0.3
    with pytest.raises(ValueError, match="cosine"):
        make_schedule("step", 0.1, 10)


def test_clip_grad_norm(backend):
    a = Parameter(backend.from_host([3.0, 0.0], "float64"))
    b = Parameter(backend.from_host([[4.0]], "float64"))
    a.grad, b.grad = backend.from_host([3.0, 0.0], "float64"), backend.from_host([[4.0]], "float64")
    assert clip_grad_norm([a, b], 10.0) == pytest.approx(5.0)
    np.testing.assert_allclose(backend.to_host(a.grad), [3.0, 0.0])  # under the limit: untouched
    assert clip_grad_norm([a, b], 1.0) == pytest.approx(5.0)
    total = math.sqrt(float((backend.to_host(a.grad) ** 2).sum() + (backend.to_host(b.grad) ** 2).sum()))
    assert total == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_allclose(backend.to_host(a.grad), [0.6, 0.0], rtol=1e-5)
    assert clip_grad_norm([Parameter(backend.from_host([1.0], "float64"))], 1.0) == 0.0  # no grads



def test_clip_norm_is_accurate_over_millions_of_float32_gradients(backend):
    """One float32 dot over 8M squares came out 1.4e-4 low (BLAS adds each lane's squares into one float32;
    1.2e-3 at GPT-2's 124M, which moved Adam's first step by 3e-4 of lr): the norm is summed in chunks."""
    rng = np.random.default_rng(0)
    g = (rng.standard_normal(8_000_000) * rng.lognormal(0.0, 2.0, 8_000_000)).astype(np.float32)
    exact = math.sqrt(float(np.dot(g.astype(np.float64), g.astype(np.float64))))
    p = Parameter(backend.from_host(np.zeros_like(g), "float32"))
    p.grad = backend.from_host(g, "float32")
    assert clip_grad_norm([p], 0.0) == pytest.approx(exact, rel=1e-5)
    opt = SGD([p], lr=0.1)
    p.grad = backend.from_host(g, "float32")
    assert float(backend.to_host(opt.clip_grad_norm(None))) == pytest.approx(exact, rel=1e-5)

def _array_calls(model_layers: int, opt_cls, monkeypatch) -> int:
    """Arrays array-api-strict makes during one clip + optimizer step of a GPT with this many layers."""
    import array_api_strict

    from tinyllm.models import build_model

    be = tinyllm_device("strict:1")
    m = build_model("gpt", vocab_size=11, block_size=8, n_layer=model_layers, n_head=2, n_embd=16, device=be)
    opt = opt_cls(decay_groups(m, 0.1), lr=1e-3)
    _, loss = m(be.from_host([[1, 2, 3]], "int64"), be.from_host([[2, 3, 4]], "int64"))
    loss.backward()
    opt.clip_grad_norm(1.0)
    opt.step()  # the first step makes the state: not counted
    loss = m(be.from_host([[1, 2, 3]], "int64"), be.from_host([[2, 3, 4]], "int64"))[1]
    opt.zero_grad()
    loss.backward()
    made = []
    new = type(array_api_strict.asarray(0))._new.__func__
    monkeypatch.setattr(type(array_api_strict.asarray(0)), "_new",
                        classmethod(lambda cls, *a, **k: made.append(1) or new(cls, *a, **k)))
    opt.clip_grad_norm(1.0)
    opt.step()
    monkeypatch.undo()
    return len(made)


@pytest.mark.parametrize("opt_cls", [AdamW, SGD])
def test_clip_and_step_cost_the_same_array_calls_for_any_number_of_tensors(opt_cls, monkeypatch):
    small, big = _array_calls(1, opt_cls, monkeypatch), _array_calls(6, opt_cls, monkeypatch)
    assert small == big and small < 80, (small, big)  # 1 layer: 14 parameter tensors; 6 layers: 54


def tinyllm_device(name):
    from backends import get_backend

    return get_backend(name)
