"""Byte-level BPE (--tokenizer bpe): training, storage with the checkpoint, GPT-2's file formats, errors."""
import json
import os
import sys

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # transformers, where a test uses it, reads nothing from a network

from tinyllm.cli import EXIT_BAD_INPUT, main
from tinyllm.data import TokenizerError, load_dataset, tokenizer_from_dict
from tinyllm.train import load_checkpoint

pytest.importorskip("tokenizers", reason="tokenizers is not installed (pip install 'tinyllm[bpe]')")

from tinyllm.data.bpe import EOT, BPETokenizer, train_bpe  # noqa: E402
from tinyllm.gpt2 import load_hf_tokenizer  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHAKESPEARE = os.path.join(ROOT, "..", "shared", "data", "tinyshakespeare.txt")
TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n" * 20
TINY = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "8", "--batch-size", "4", "--steps", "2",
        "--eval-interval", "2", "--eval-iters", "1", "--samples", "1", "--device", "cpu"]


@pytest.fixture(scope="module")
def shakespeare_tok():
    with open(SHAKESPEARE, encoding="utf-8") as f:
        text = f.read()
    return train_bpe([text[:200_000]], 512), text


def test_trains_exactly_the_vocab_size_and_is_deterministic(shakespeare_tok):
    tok, text = shakespeare_tok
    assert tok.vocab_size == 512 and tok.eot_id is not None and tok.bos_id is None
    assert train_bpe([text[:200_000]], 512).to_dict() == tok.to_dict()  # resume rebuilds the same tokenizer
    ids = tok.encode(text[:5000])
    assert len(ids) < 5000 / 1.8  # merges: about 2 characters per token at 512
    assert tok.decode(ids) == text[:5000]


def test_any_text_encodes_and_decodes_exactly(shakespeare_tok):
    tok, _ = shakespeare_tok
    for s in ["héllo wörld", "日本語のテキスト", "emoji 😀👍🏽", "\x00\x07 tabs\tand\r\nCRLF", ""]:
        assert tok.decode(tok.encode(s)) == s  # every byte has a token: nothing is out of the vocabulary


def test_too_small_or_too_large_vocab_is_one_line(tmp_path, capsys):
    with pytest.raises(TokenizerError, match="too small"):
        train_bpe(["abc"], 256)
    with pytest.raises(TokenizerError, match=r"too large for this text: .* ran out of pairs to merge at \d+ tokens"):
        train_bpe(["the cat sat on the mat"], 1000)
    data = tmp_path / "t.txt"
    data.write_text(TEXT)
    for size, words in (("100", "--vocab-size 100 is too small"), ("2000000", "--vocab-size 2000000 is too large"),
                        ("5000", "--vocab-size 5000 is too large for this text")):
        code = main(["train", *TINY, "--data", str(data), "--tokenizer", "bpe", "--vocab-size", size,
                     "--out", str(tmp_path / "run")])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == EXIT_BAD_INPUT and len(err) == 1 and words in err[0], err
    assert main(["train", *TINY, "--vocab-size", "300", "--out", str(tmp_path / "run")]) == EXIT_BAD_INPUT
    assert "add --tokenizer bpe" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "run")


def test_missing_library_is_one_line_on_what_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tokenizers", None)  # as if not installed: import raises ImportError
    assert main(["train", *TINY, "--tokenizer", "bpe", "--out", str(tmp_path / "run")]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'tinyllm[bpe]'" in err[0] and "tokenizers" in err[0]
    assert not os.path.exists(tmp_path / "run")


def test_char_stays_the_default(tmp_path):
    assert main(["train", *TINY, "--out", str(tmp_path / "run")]) == 0
    assert load_checkpoint(str(tmp_path / "run"))[1]["tokenizer"]["type"] == "char"


@pytest.mark.parametrize("data, lines", [("text", False), ("names", True)])
def test_stored_with_the_checkpoint_and_resumed(data, lines, tmp_path, capsys):
    spec = "names"
    if data == "text":
        spec = str(tmp_path / "t.txt")
        open(spec, "w").write(TEXT)
    run = str(tmp_path / "run")
    assert main(["train", *TINY, "--data", spec, "--tokenizer", "bpe", "--vocab-size", "270", "--out", run]) == 0
    meta = load_checkpoint(run)[1]
    tok = tokenizer_from_dict(meta["tokenizer"])
    assert isinstance(tok, BPETokenizer) and tok.vocab_size == 270 and meta["config"]["vocab_size"] == 270
    assert (tok.bos_id is not None) is lines  # line data: <|endoftext|> starts and ends each line
    ds = load_dataset(spec, lines=None, tokenizer=lambda texts, l: train_bpe(texts, 270, bos=l))
    assert ds.tokenizer == tok
    assert main(["train", "--resume", "--out", run, "--steps", "4", "--vocab-size", "280"]) == EXIT_BAD_INPUT
    assert "trained with a bpe tokenizer of 270 tokens, the settings give one of 280 tokens" in capsys.readouterr().err
    assert main(["train", "--resume", "--out", run, "--steps", "4"]) == 0  # the same tokenizer is rebuilt
    assert load_checkpoint(run)[1]["step"] == 4
    capsys.readouterr()
    assert main(["sample", "--out", run, "--num-samples", "2", "--max-new-tokens", "5", "--device", "strict"]) == 0
    assert capsys.readouterr().out.strip()


def test_line_data_uses_endoftext_as_bos():
    ds = load_dataset("names", tokenizer=lambda texts, lines: train_bpe(texts, 300, bos=lines))
    tok = ds.tokenizer
    assert tok.bos_id == tok.encode(EOT)[0] and ds.train[0] == tok.bos_id
    assert tok.decode(ds.train[:30]).isalpha()  # <bos> is not shown


def test_bpe_is_trained_on_the_training_split_only(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text("ab " * 3000 + "zq" * 400)  # "zq" appears only in the last 10%: the validation text
    ds = load_dataset(str(p), lines=False, tokenizer=lambda texts, lines: train_bpe(texts, 258, bos=lines))
    assert "zq" not in ds.tokenizer.tk.get_vocab()
    assert ds.info["val_chars"] == len(p.read_text()) - int(0.9 * len(p.read_text()))


def _gpt2_format_files(tmp_path, tok):
    """vocab.json + merges.txt exactly as GPT-2 ships them (tokenizers writes the same format)."""
    d = tmp_path / "gpt2"
    d.mkdir()
    tok.tk.model.save(str(d))
    vocab = json.load(open(d / "vocab.json"))
    vocab[EOT] = tok.eot_id  # GPT-2's vocab.json lists <|endoftext|> too
    json.dump(vocab, open(d / "vocab.json", "w"))
    return d


def test_gpt2_vocab_and_merges_load_like_tokenizer_json(shakespeare_tok, tmp_path):
    tok, text = shakespeare_tok
    d = _gpt2_format_files(tmp_path, tok)
    assert sorted(os.listdir(d)) == ["merges.txt", "vocab.json"]
    from_pair = load_hf_tokenizer(str(d))
    (d / "tokenizer.json").write_text(tok.to_json())
    from_json = load_hf_tokenizer(str(d))
    sample = text[200_000:205_000] + " héllo " + EOT + " 😀"
    assert from_pair.encode(sample) == from_json.encode(sample) == tok.encode(sample)
    assert from_pair.decode(from_pair.encode(sample)) == sample and from_pair.vocab_size == 512


def test_gpt2_tokenizer_files_from_transformers(shakespeare_tok, tmp_path):
    """GPT2TokenizerFast's own save (GPT-2's tokenizer.json layout) loads, and encodes as transformers does."""
    transformers = pytest.importorskip("transformers", reason="transformers is not installed (the reference)")
    tok, text = shakespeare_tok
    d = _gpt2_format_files(tmp_path, tok)
    ref = transformers.GPT2TokenizerFast.from_pretrained(str(d))  # reads vocab.json + merges.txt
    out = tmp_path / "saved"
    ref.save_pretrained(str(out))
    assert "tokenizer.json" in os.listdir(out) and ref.vocab_size == 512
    ours = load_hf_tokenizer(str(out))
    sample = text[300_000:303_000] + " ünïcode 😀 " + EOT
    assert ours.encode(sample) == ref(sample)["input_ids"]
    assert ours.decode(ours.encode(sample)) == ref.decode(ref(sample)["input_ids"]) == sample


def test_damaged_tokenizer_files_are_one_line(tmp_path):
    (tmp_path / "tokenizer.json").write_text("{broken")
    with pytest.raises(TokenizerError, match="tokenizer.json does not parse"):
        load_hf_tokenizer(str(tmp_path))
    os.remove(tmp_path / "tokenizer.json")
    (tmp_path / "vocab.json").write_text('{"a": 0}')
    (tmp_path / "merges.txt").write_text("#version: 0.2\na b\n")
    with pytest.raises(TokenizerError, match="do not form a BPE vocabulary"):
        load_hf_tokenizer(str(tmp_path))


def test_shakespeare_bpe_script_reports_bits_per_character(tmp_path):
    import math
    import subprocess

    data = tmp_path / "t.txt"
    data.write_text(TEXT * 5)
    p = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "tutorials", "shakespeare_bpe.py"), "--data", str(data),
                        "--steps", "2", "--val-batches", "1", "--eval-iters", "1", "--vocab-size", "280", "--out", str(tmp_path / "o"),
                        "--json"], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ROOT})
    assert p.returncode == 0, p.stderr[-2000:]
    char, bpe = json.loads(p.stdout)["rows"]
    assert (char["tokenizer"], char["chars_per_token"], bpe["tokenizer"], bpe["vocab"]) == ("char", 1.0, "bpe", 280)
    n = len(TEXT * 5)
    assert bpe["val_chars"] == char["val_tokens"] == n - int(0.9 * n)  # the same validation text
    assert bpe["chars_per_token"] == pytest.approx(bpe["val_chars"] / bpe["val_tokens"]) and bpe["chars_per_token"] > 1
    for r in (char, bpe):
        assert r["val_bits_per_char"] == pytest.approx(r["val_nats_per_token"] / math.log(2) / r["chars_per_token"])
