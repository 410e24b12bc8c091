"""Token ids outside the vocabulary are refused on the host, before they go to the device: on a GPU an
embedding lookup or a gather would wrap them (CuPy's take) or a kernel read past its table, so the model,
cross_entropy's targets and a dataset's stream check host ids first (TokenIdError, one line, exit 2)."""
import numpy as np
import pytest

from tinyllm import Tensor
from tinyllm import ops as F
from tinyllm.data.batches import Batcher
from tinyllm.errors import TokenIdError
from tinyllm.models import GPT, CharMLP, GPTConfig, MLPConfig


def _gpt(backend):
    return GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=16), device=backend)


@pytest.mark.parametrize("ids,bad", [([[0, 3, 11]], "token id 11 at (0, 2)"),
                                     (np.array([[4, -1]]), "token id -1 at (0, 1)"),
                                     (np.array([[2, 5], [7, 99]], dtype=np.int32), "token id 99 at (1, 1)")])
def test_a_model_refuses_host_ids_outside_its_vocabulary(backend, ids, bad):
    model = _gpt(backend)
    before = backend.stats.copy()
    with pytest.raises(TokenIdError) as e:
        model(ids)
    assert str(e.value).startswith(f"the GPT model's input ids: {bad} is outside the vocabulary of 11 (ids 0..10)")
    assert "\n" not in str(e.value) and isinstance(e.value, IndexError) and e.value.exit_code == 2
    assert (backend.stats - before).h2d_calls == 0  # refused before anything went over
    logits, _ = model([[0, 10]])  # the edges are in
    assert tuple(logits.shape) == (1, 2, 11)


def test_every_model_checks_its_input_ids(backend):
    model = CharMLP(MLPConfig(vocab_size=7, block_size=3, n_embd=4, n_hidden=8), device=backend)
    with pytest.raises(TokenIdError, match="the CharMLP model's input ids: token id 7 at"):
        model([[1, 7]])


def test_cross_entropy_refuses_host_targets_outside_the_logits(backend):
    logits = Tensor(backend.from_host(np.zeros((2, 5), dtype=np.float32)), device=backend)
    with pytest.raises(TokenIdError, match=r"cross_entropy's targets: token id 5 at 1 "):
        F.cross_entropy(logits, [0, 5])
    with pytest.raises(TokenIdError, match=r"token id -2 at 0"):
        F.cross_entropy(logits, np.array([-2, 1]), ignore_index=-1)
    loss = F.cross_entropy(logits, [-1, 4], ignore_index=-1)  # the ignored id is not a token
    assert abs(float(backend.to_host(loss.data)) - np.log(5)) < 1e-6


def test_a_token_stream_beyond_the_models_vocabulary_is_refused(backend):
    from array import array

    stream = array("B", [1, 2, 3, 4, 12, 5, 6, 7, 8, 9])
    before = backend.stats.copy()
    with pytest.raises(TokenIdError, match=r"^the training data: token id 12 at 4 is outside the vocabulary of 11"):
        Batcher(stream, backend, 4, 11, "the training data")
    assert (backend.stats - before).h2d_calls == 0
    Batcher(stream, backend, 4, 13, "the training data")  # fits a larger vocabulary


def test_ids_already_on_the_device_are_not_read_back(backend):
    model = _gpt(backend)
    ids = backend.from_host([[1, 2, 3]], "int64")
    before = backend.stats.copy()
    model(ids)
    assert (backend.stats - before).d2h_calls == 0
