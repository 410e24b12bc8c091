"""Issue 22 (engine): models given ids from another device, backward's seed, thread-local no_grad,
optimizer settings and plain tensors, dtypes refused at the door, sampling's prompt and temperature."""
import math
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import tinyllm
from backends import DeviceError
from tinyllm import Tensor, no_grad, tensor
from tinyllm.cli import EXIT_BAD_INPUT, main
from tinyllm.models import build_model
from tinyllm.optim import SGD, Adam, AdamW
from tinyllm.sample import SamplingError, generate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "8", "--batch-size", "4", "--steps", "2",
        "--eval-interval", "2", "--eval-iters", "1", "--samples", "0", "--device", "cpu"]
MODELS = {"bigram": {}, "mlp": {"n_embd": 4, "n_hidden": 8}, "gpt": {"n_layer": 1, "n_head": 2, "n_embd": 8}}


def other_device(backend) -> str:
    return "strict" if backend.name == "cpu" else "cpu"


# -- 10: a model given ids on another device ---------------------------------------------------------

@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_refuses_ids_on_another_device(backend, name):
    model = build_model(name, vocab_size=7, block_size=4, device=backend, **MODELS[name])
    other = other_device(backend)
    ids = tensor([[1, 2, 3]], device=other)
    for idx in (ids, ids.data):  # a Tensor, and its device array
        if idx is ids.data and other == "cpu":
            continue  # a NumPy array is host data: it is copied to the model's device, as any list is
        with pytest.raises(DeviceError) as e:
            model(idx)
        assert backend.name in str(e.value) and other in str(e.value), str(e.value)
    logits, _ = model(tensor([[1, 2, 3]], device=backend))  # the same ids on the model's device work
    assert logits.shape == (1, 3, 7)


# -- 11: backward's seed -----------------------------------------------------------------------------

def test_backward_seed_must_match_the_output_shape(backend):
    w = tensor([1.0, 2.0], device=backend, requires_grad=True)
    with pytest.raises(ValueError, match=r"\(3,\).*\(2,\)"):
        (w * 2.0).backward(tensor([1.0, 1.0, 1.0], device=backend))
    with pytest.raises(ValueError, match=r"\(\).*\(2,\)"):
        (w * 2.0).backward(1.0)  # a scalar seed only for a one-element output
    assert w.grad is None


def test_backward_seed_takes_the_output_dtype_lists_and_floats(backend):
    w = tensor([1.0, 2.0], device=backend, requires_grad=True)  # float32
    (w * 3.0).sum().backward(1.0)
    assert backend.dtype_name(w.grad.dtype) == "float32"
    np.testing.assert_allclose(backend.to_host(w.grad), [3.0, 3.0])
    w.grad = None
    (w * 3.0).backward([1.0, 2.0])
    assert backend.dtype_name(w.grad.dtype) == "float32"
    np.testing.assert_allclose(backend.to_host(w.grad), [3.0, 6.0])
    w.grad = None
    (w * 3.0).backward(tensor([2.0, 1.0], device=backend, dtype="float64"))
    assert backend.dtype_name(w.grad.dtype) == "float32"
    np.testing.assert_allclose(backend.to_host(w.grad), [6.0, 3.0])
    w.grad = None
    (w * 3.0).backward(np.array([1, 1]))  # host integers: converted to the output's dtype and device
    np.testing.assert_allclose(backend.to_host(w.grad), [3.0, 3.0])


def test_backward_seed_refuses_non_numbers_and_other_devices(backend):
    w = tensor([1.0, 2.0], device=backend, requires_grad=True)
    with pytest.raises(TypeError, match="numbers"):
        (w * 2.0).backward("ones")
    with pytest.raises(DeviceError) as e:
        (w * 2.0).backward(tensor([1.0, 1.0], device=other_device(backend)))
    assert backend.name in str(e.value) and other_device(backend) in str(e.value)


# -- 12: grad mode per thread, no_grad re-entrant and reusable ---------------------------------------

def test_no_grad_is_per_thread(backend):
    a = tensor([1.0], device=backend, requires_grad=True)
    seen = {}

    def work():
        seen["enabled"] = tinyllm.is_grad_enabled()
        seen["records"] = (a * 2.0).requires_grad

    with no_grad():
        t = threading.Thread(target=work)
        t.start()
        t.join()
    assert seen == {"enabled": True, "records": True}

    inside, leave = threading.Event(), threading.Event()

    def quiet():
        with no_grad():
            inside.set()
            leave.wait(10)

    t = threading.Thread(target=quiet)
    t.start()
    inside.wait(10)
    try:
        assert tinyllm.is_grad_enabled() and (a * 2.0).requires_grad  # the other thread's no_grad is its own
    finally:
        leave.set()
        t.join()


def test_one_no_grad_object_enters_twice_and_again():
    a = tensor([1.0], requires_grad=True)
    ng = no_grad()
    with ng:
        with ng:
            assert not (a * 2.0).requires_grad
        assert not tinyllm.is_grad_enabled()  # still inside the outer one
    assert tinyllm.is_grad_enabled()
    with ng:
        assert not (a * 2.0).requires_grad
    assert tinyllm.is_grad_enabled()

    @no_grad()
    def f():
        return (a * 2.0).requires_grad

    assert f() is False and f() is False and tinyllm.is_grad_enabled()


# -- 13: optimizer settings; plain requires_grad tensors ---------------------------------------------

BAD = [(AdamW, {"lr": math.nan}, "lr"), (AdamW, {"lr": math.inf}, "lr"), (SGD, {"lr": -0.1}, "lr"),
       (AdamW, {"lr": "0.1"}, "lr"), (AdamW, {"betas": (1.5, 0.99)}, "beta"), (Adam, {"betas": (0.9, 1.0)}, "beta"),
       (AdamW, {"betas": (-0.1, 0.99)}, "beta"), (AdamW, {"betas": (0.9,)}, "beta"), (AdamW, {"eps": 0.0}, "eps"),
       (Adam, {"eps": math.nan}, "eps"), (AdamW, {"weight_decay": -0.1}, "weight_decay"),
       (SGD, {"weight_decay": math.inf}, "weight_decay"), (SGD, {"momentum": -0.5}, "momentum"),
       (SGD, {"momentum": math.nan}, "momentum")]


@pytest.mark.parametrize("cls, kw, word", BAD, ids=[f"{c.__name__}-{k}" for c, k, _ in BAD])
def test_optimizer_refuses_bad_settings(cls, kw, word):
    w = tinyllm.nn.Parameter(tinyllm.tensor([1.0, 2.0]))
    with pytest.raises(tinyllm.errors.ConfigError, match=word):
        cls([w], **kw)


def test_optimizer_refuses_no_parameters_and_groups_with_bad_decay():
    for params in ([], iter([]), [{"params": []}]):
        with pytest.raises(tinyllm.errors.ConfigError, match="no parameters"):
            AdamW(params)
    w = tinyllm.nn.Parameter(tinyllm.tensor([1.0]))
    with pytest.raises(tinyllm.errors.ConfigError, match="weight_decay"):
        AdamW([{"params": [w], "weight_decay": math.nan}])
    with pytest.raises(tinyllm.errors.ConfigError, match="Tensor"):
        AdamW([np.ones(2)])


@pytest.mark.parametrize("cls", [SGD, AdamW])
def test_optimizer_trains_plain_requires_grad_tensors(backend, cls):
    """The README's engine example, then a step: the plain tensors move as Parameters would."""
    def loss_of(w):
        x = tinyllm.tensor([[1.0, 2.0], [3.0, 4.0]], device=backend)
        return tinyllm.mse_loss(tinyllm.tanh(x @ w), tinyllm.tensor([[0.0], [1.0]], device=backend))

    w = tinyllm.tensor([[0.5], [-1.0]], device=backend, requires_grad=True)
    p = tinyllm.nn.Parameter(tinyllm.tensor([[0.5], [-1.0]], device=backend))
    opts = [cls([w], lr=0.1), cls([p], lr=0.1)]
    for _ in range(3):
        for t, opt in zip((w, p), opts):
            opt.zero_grad()
            loss_of(t).backward()
            opt.step()
    np.testing.assert_allclose(w.numpy(), p.numpy(), rtol=1e-6)
    assert not np.allclose(w.numpy(), [[0.5], [-1.0]])


# -- 14: dtypes tinyllm has no kernels for are refused at the door -----------------------------------

@pytest.mark.parametrize("dtype", ["float16", "int8", "int16", "complex64", "object"])
def test_unsupported_dtypes_are_refused_at_the_door(backend, dtype):
    a = np.array([1, 2], dtype=dtype)
    for make in (lambda: tensor(a, device=backend), lambda: Tensor(a, device=backend)):
        with pytest.raises(TypeError) as e:
            make()
        msg = str(e.value)
        assert dtype in msg and "float32" in msg and "int64" in msg and "bool" in msg, msg


def test_complex_numbers_are_refused(backend):
    with pytest.raises(TypeError, match="complex"):
        tensor([1j, 2.0], device=backend)


def test_asked_dtype_converts_an_unsupported_array(backend):
    t = tensor(np.array([1.5, 2.5], dtype="float16"), device=backend, dtype="float32")
    assert backend.dtype_name(t.dtype) == "float32" and t.tolist() == [1.5, 2.5]


# -- sampling: nanoGPT's call form, temperature ------------------------------------------------------

def test_generate_takes_a_tensor_of_ids_the_nanogpt_way(backend):
    m = build_model("gpt", vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8, device=backend)
    want = generate(m, [3, 4, 5], 8, temperature=0)
    assert generate(m, tensor([[3, 4, 5]], device=backend), 8, temperature=0) == want
    assert generate(m, tensor([3, 4, 5], device=backend), 8, temperature=0) == want
    assert generate(m, np.array([[3, 4, 5]]), 8, temperature=0) == want
    with pytest.raises(SamplingError, match="one prompt"):
        generate(m, tensor([[3, 4], [5, 6]], device=backend), 8)


def test_infinite_temperature_is_refused_as_not_finite():
    m = build_model("bigram", vocab_size=5, block_size=1)
    for t in (math.inf, math.nan):
        with pytest.raises(SamplingError, match="finite"):
            generate(m, [1], 3, temperature=t)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A char run on the names (line data) and a BPE run on a text."""
    d = tmp_path_factory.mktemp("issue22")
    char, bpe, text = str(d / "char"), str(d / "bpe"), d / "t.txt"
    text.write_text("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n" * 20)
    assert main(["train", *TINY, "--out", char]) == 0
    pytest.importorskip("tokenizers")
    assert main(["train", *TINY, "--data", str(text), "--tokenizer", "bpe", "--vocab-size", "270", "--out", bpe]) == 0
    return char, bpe


def test_greedy_sampling_prints_one_sample_unless_asked_for_more(runs, capsys):
    char, _ = runs
    capsys.readouterr()
    assert main(["sample", "--out", char, "--temperature", "0", "--device", "cpu"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1
    assert main(["sample", "--out", char, "--temperature", "0", "--num-samples", "3", "--device", "cpu"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3
    assert main(["sample", "--out", char, "--device", "cpu"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 10  # sampling at a temperature keeps the default 10


def test_infinite_temperature_on_the_command_line(runs, capsys):
    capsys.readouterr()
    assert main(["sample", "--out", runs[0], "--temperature", "inf"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "finite" in err[0], err


def test_bpe_prompt_that_is_not_utf8_is_one_line(runs):
    """The bytes go on the command line as they are (Python reads them as surrogate escapes)."""
    char, bpe = runs
    for run in (char, bpe):
        p = subprocess.run([sys.executable, "-m", "tinyllm", "sample", "--out", run, "--prompt", b"ab\xff\xfe",
                            "--device", "cpu"], capture_output=True, text=True, cwd=ROOT, timeout=120,
                           env=dict(os.environ, PYTHONPATH=ROOT))
        err = p.stderr.strip().splitlines()
        assert p.returncode == EXIT_BAD_INPUT and len(err) == 1 and err[0].startswith("error: "), p.stderr
        assert "Traceback" not in p.stderr
    assert "UTF-8" in err[0] and "\\xff\\xfe" in err[0], err[0]
