"""Tokenizers (exact JSON round trip), datasets (deterministic splits), batching, bad files."""
import json

import numpy as np
import pytest

from backends import get_backend
from tinyllm.data import (BOS, Batcher, CharTokenizer, DataError, TokenizerError, WordTokenizer, arithmetic_dataset,
                          load_dataset, number_words, read_text_file, tokenizer_from_dict)


@pytest.mark.parametrize("tok, text", [
    (CharTokenizer.from_text("hello, wörld! ünïcode ☃\n"), "hello ☃\nwörld"),
    (CharTokenizer.from_text("emma\nolivia\nava", bos=True), "olivia"),
    (WordTokenizer.from_text("two plus two equals four"), "four plus two equals two"),
])
def test_tokenizer_json_round_trip_is_exact(tok, text):
    again = tokenizer_from_dict(json.loads(json.dumps(tok.to_dict())))
    assert again == tok and again.to_dict() == tok.to_dict()
    assert again.itos == tok.itos and again.vocab_size == tok.vocab_size
    ids = tok.encode(text)
    assert again.encode(text) == ids
    assert tok.decode(ids) == text


def test_bos_is_token_zero_and_dropped_by_decode():
    tok = CharTokenizer.from_text("ab\nba", bos=True)
    assert tok.itos[0] == BOS and tok.bos_id == 0 and "\n" not in tok.stoi
    assert tok.decode([0, 1, 2, 0]) == "ab"


def test_unknown_characters_and_bad_descriptions():
    with pytest.raises(TokenizerError, match="'x'"):
        CharTokenizer("abc").encode("abx")
    with pytest.raises(TokenizerError, match="seven"):
        WordTokenizer(["one"]).encode("one seven")
    for bad in ({}, {"type": "bpe", "tokens": []}, {"type": "char", "tokens": [1, 2]}, "char"):
        with pytest.raises(TokenizerError):
            tokenizer_from_dict(bad)


def test_names_split_is_deterministic_and_disjoint():
    a, b = load_dataset("names"), load_dataset("names")
    assert a.train == b.train and a.val == b.val
    assert sorted(a.train_lines + a.val_lines) == sorted(a.lines)  # a partition (the names repeat a few)
    assert len(a.lines) > 32000
    assert abs(len(a.val_lines) / len(a.lines) - 0.1) < 0.001
    c = load_dataset("names", seed=1)
    assert c.val_lines != a.val_lines and sorted(c.lines) == sorted(a.lines)
    # streams start and end with <bos>, one <bos> between lines
    assert a.train[0] == 0 and a.train[-1] == 0 and a.train.count(0) == len(a.train_lines) + 1


def test_arithmetic_val_problems_never_in_training():
    ds = arithmetic_dataset()
    assert set(ds.train_lines).isdisjoint(ds.val_lines)
    assert "two plus two equals four" in ds.lines
    assert number_words(42) == "forty two" and number_words(7) == "seven"


def test_text_file_splits_90_10(tmp_path):
    p = tmp_path / "t.txt"
    text = "".join(chr(97 + i % 26) for i in range(1000)) + "\nand a long line that is more than forty chars"
    p.write_text(text, encoding="utf-8")
    ds = load_dataset(str(p))
    assert ds.tokenizer.decode(ds.train + ds.val) == text
    assert len(ds.train) == int(0.9 * len(text))


@pytest.mark.parametrize("content, match", [
    (None, "does not exist"),
    (b"", "empty"),
    (b"   \n\n ", "no non-blank line"),
    (b"caf\xe9 au lait\n", "not valid UTF-8"),
    (b"ab\x00cd", "binary"),
])
def test_bad_files_raise_one_clear_data_error(tmp_path, content, match):
    p = tmp_path / "data.txt"
    if content is not None:
        p.write_bytes(content)
    with pytest.raises(DataError, match=match) as e:
        load_dataset(str(p))
    assert "\n" not in str(e.value)
    with pytest.raises(DataError, match="directory"):
        read_text_file(str(tmp_path))


def test_batcher_windows(backend):
    tokens = list(range(100))
    bt = Batcher(tokens, backend, block_size=8)
    x, y = bt.batch(16, backend.rng(0))
    x, y = backend.to_host(x), backend.to_host(y)
    assert x.shape == y.shape == (16, 8)
    np.testing.assert_array_equal(y, x + 1)  # the stream is 0..99, so windows are consecutive
    np.testing.assert_array_equal(x[:, 1:], x[:, :-1] + 1)
    assert x.min() >= 0 and y.max() <= 99
    x2, _ = Batcher(tokens, backend, 8).batch(16, backend.rng(0))
    np.testing.assert_array_equal(backend.to_host(x2), x)  # same seed, same batch
    xc, _ = Batcher(tokens, get_backend("cpu"), 8).batch(16, get_backend("cpu").rng(0))
    np.testing.assert_array_equal(get_backend("cpu").to_host(xc), x)  # and the same on every backend


def test_batcher_refuses_a_stream_shorter_than_a_window(backend):
    with pytest.raises(ValueError, match="block_size"):
        Batcher([1, 2, 3], backend, block_size=3)
