"""tinyllm prepare reads its sources in chunks (sources.CHUNK_BYTES, tiny here): the documents, the split and
the ids are those of the whole text, a file larger than a chunk is never held whole, and the bar moves within
it."""
import gzip
import hashlib
import io
import json
import os
import random
import tracemalloc

import numpy as np
import pytest
from tqdm import tqdm

from backends.shards import HEADER_BYTES
from tinyllm.data import sources
from tinyllm.data.bpe import train_bpe
from tinyllm.data.datasets import clean_text
from tinyllm.data.encode import BPEEncoder, encode_stream, make_encoder
from tinyllm.data.prepare import PrepareOptions, SplitWriter, _encode_all, prepare
from tinyllm.data.shards import load_prepared
from tinyllm.data.sources import LongDocument, documents, is_val, list_sources, split_documents
from tinyllm.errors import DataError

WORDS = "the quick brown fox jumps over a lazy dog 42 zebras, café ünïcödé 猫 🙂 it's done".split()
GAPS = ["\n", "\n\n", "\n\n\n", " \n", "\n \n", "\r\n", "\r\n\r\n", "\r", "\r\r\n", " ", "  ", "\t", "\n\t"]


def messy_text(n: int, seed: int) -> str:
    """Words joined by runs of newlines, spaces, \\r\\n and lone \\r, often a BOM first."""
    r = random.Random(seed)
    out = ["\ufeff" if r.random() < 0.5 else ""]
    for _ in range(n):
        out += [r.choice(WORDS), r.choice(GAPS) if r.random() < 0.6 else " "]
    return "".join(out) + r.choice(["", "\n", "\n\n", "\r"])


def source(tmp_path, data: bytes, name: str = "t.txt"):
    (tmp_path / name).write_bytes(data)
    (src,) = list_sources([str(tmp_path / name)])
    return src


@pytest.mark.parametrize("mode", ["paragraph", "line", "file"])
def test_chunked_text_gives_the_documents_of_the_whole(tmp_path, monkeypatch, mode):
    for seed in range(40):
        raw = messy_text(60, seed).encode()
        monkeypatch.setattr(sources, "CHUNK_BYTES", 1 + seed % 9)
        src = source(tmp_path, raw)
        whole = clean_text(raw.decode())[0]
        got = list(documents(src, mode))
        if mode == "file":  # several chunks: one LongDocument, its text and UTF-8 those of the whole
            assert [type(d) for d, _ in got] == [LongDocument]
            doc = got[0][0]
            assert "".join(t for t, _ in doc.chunks()) == whole
            assert b"".join(b for b, _ in doc.utf8_chunks()) == whole.encode()
            assert is_val(doc, seed, 0.5) == is_val(whole, seed, 0.5) and doc.head(7) == whole[:7]
        else:
            assert [d for d, _ in got] == split_documents(whole, mode), seed
        assert src.sha256 == hashlib.sha256(raw).hexdigest() and src.documents == len(got)


def test_a_blank_file_larger_than_a_chunk_is_no_document(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "CHUNK_BYTES", 4)
    assert list(documents(source(tmp_path, "\ufeff \n\r\n\t\u3000 \n".encode()), "file")) == []


def test_a_bad_byte_is_named_by_its_offset_in_the_file_whatever_the_chunks(tmp_path, monkeypatch):
    r = random.Random(0)
    for case in range(60):
        good = messy_text(8, case).encode()
        at = r.randrange(len(good) + 1)
        raw = good[:at] + r.choice([b"\xe9", b"\xff", b"\xe2\x82", b"\xf0\x9f\x99", b"\x80"]) + good[at:]
        try:
            raw.decode("utf-8")
            continue
        except UnicodeDecodeError as e:
            offset = e.start
        monkeypatch.setattr(sources, "CHUNK_BYTES", 1 + case % 7)
        for mode in ("paragraph", "file"):
            with pytest.raises(DataError, match=rf"not valid UTF-8 \(bad byte at offset {offset}\)"):
                for doc, _ in documents(source(tmp_path, raw), mode):
                    if isinstance(doc, LongDocument):
                        list(doc.chunks())


def _split_ids(out, split: str) -> list:
    m = json.load(open(os.path.join(out, "manifest.json")))
    dtype = {"uint16": "<u2", "uint32": "<u4"}[m["dtype"]]
    return np.concatenate([np.fromfile(os.path.join(out, s["file"]), dtype=dtype, offset=HEADER_BYTES)
                           for s in m[split]["shards"]]).tolist()


@pytest.mark.parametrize("tokenizer", ["char", "bpe"])
def test_a_file_document_several_chunks_long_gives_the_ids_of_the_whole(tmp_path, monkeypatch, tokenizer):
    long_text = messy_text(3000, 1) + "\n" + "x" * 5000 + "\n\nend"  # a stretch with no cut: held, then encoded
    (tmp_path / "long.txt").write_bytes(long_text.encode())
    (tmp_path / "short.txt").write_text("a short document")
    whole = clean_text(long_text)[0]
    seed = next(s for s in range(100) if not is_val(whole, s, 0.5) and is_val("a short document", s, 0.5))
    monkeypatch.setattr(sources, "CHUNK_BYTES", 997)
    opts = PrepareOptions(out=str(tmp_path / "d"), documents="file", tokenizer=tokenizer, vocab_size=300,
                          val_fraction=0.5, seed=seed, progress=False)
    m = prepare([str(tmp_path / "long.txt"), str(tmp_path / "short.txt")], opts, log=lambda *a: None)
    tok = load_prepared(str(tmp_path / "d")).tokenizer
    assert _split_ids(tmp_path / "d", "train") == [tok.bos_id, *tok.encode(whole), tok.bos_id]
    assert m["train"]["documents"] == 1 and m["sources"][0]["documents"] == 1
    assert m["sources"][0]["sha256"] == hashlib.sha256(long_text.encode()).hexdigest()


class WatchedBar(tqdm):
    """A real bar (written to a buffer) that keeps each position it was moved to."""

    def __init__(self, total):
        super().__init__(total=total, file=io.StringIO(), mininterval=0)
        self.positions = []

    def update(self, n=1):
        super().update(n)
        self.positions.append(self.n)


def test_the_bar_moves_within_a_file_document(tmp_path, monkeypatch):
    text = messy_text(2000, 3)
    src = source(tmp_path, text.encode())
    monkeypatch.setattr(sources, "CHUNK_BYTES", 1000)
    tok = train_bpe([text], 300, bos=True)
    writers = {s: SplitWriter(str(tmp_path), s, 2, 10 ** 6, tok.bos_id) for s in ("train", "val")}
    bar = WatchedBar(src.size)
    _encode_all([src], PrepareOptions(out="unused"), "file", make_encoder(tok), writers, bar)
    within = [p for p in bar.positions if 0 < p < src.size]
    assert len(set(within)) >= src.size // 1000 - 1, bar.positions
    assert writers["train"].documents + writers["val"].documents == 1


@pytest.mark.parametrize("engine", ["tiktoken", "tokenizers"])
def test_pieces_cut_at_last_cut_encode_as_the_whole(engine):
    """encode_stream cuts before a newline that a non-space character follows (whatever precedes it): over
    texts full of whitespace runs, cut into random pieces, the ids are those of the whole text."""
    docs = [messy_text(400, s).replace("\r", "").lstrip("\ufeff") for s in range(12)]
    tok = train_bpe(docs[:6], 400, bos=True)
    enc = BPEEncoder(tok)
    if engine == "tiktoken" and enc.engine != "tiktoken":
        pytest.skip("tiktoken is not installed")
    if engine == "tokenizers":
        enc.tt, enc.checked = None, True
    r = random.Random(1)
    for doc in docs:
        bounds = sorted({0, len(doc), *(r.randrange(len(doc)) for _ in range(40))})
        chunks = [(doc[a:b], b) for a, b in zip(bounds, bounds[1:])]
        got = [i for ids, _ in encode_stream(enc, chunks, "t") for i in ids]
        assert got == tok.tk.encode(doc, add_special_tokens=False).ids


def _peak_bytes(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("kind", ["paragraph", "file", "jsonl.gz"])
def test_a_source_is_not_held_whole(tmp_path, monkeypatch, kind):
    """A 4 MB source read 64 KB at a time: nothing near its size is allocated at once (all was, before)."""
    monkeypatch.setattr(sources, "CHUNK_BYTES", 1 << 16)
    text = "".join(messy_text(60, s).replace("\r", "") + "\n\n" for s in range(2000))
    while len(text) < 4_000_000:
        text += text
    if kind == "jsonl.gz":
        with gzip.open(tmp_path / "t.jsonl.gz", "wt") as f:
            for i in range(0, len(text), 4000):
                f.write(json.dumps({"text": text[i:i + 4000]}) + "\n")
        src = list_sources([str(tmp_path / "t.jsonl.gz")])[0]
    else:
        src = source(tmp_path, text.encode())
    if kind == "file":  # the whole prepare: characters, the split's hash, the encoding
        (tmp_path / "b.txt").write_text("another document")
        seed = next(s for s in range(100) if is_val(text, s, 0.5) != is_val("another document", s, 0.5))
        opts = PrepareOptions(out=str(tmp_path / "d"), documents="file", val_fraction=0.5, seed=seed,
                              progress=False)
        peak = _peak_bytes(lambda: prepare([src.path, str(tmp_path / "b.txt")], opts, log=lambda *a: None))
    else:
        peak = _peak_bytes(lambda: sum(1 for _ in documents(src, kind.split(".")[0])))
    assert peak < src.size // 4 if kind != "jsonl.gz" else peak < 2_000_000, (peak, src.size)


def test_jsonl_gz_read_a_line_at_a_time_with_its_errors(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "CHUNK_BYTES", 64)
    rows = [json.dumps({"text": f"record {i} " + "word " * (i % 13)}) for i in range(300)]
    path = tmp_path / "a.jsonl.gz"
    path.write_bytes(gzip.compress(("\n".join(rows[:150]) + "\n").encode())
                     + gzip.compress(("\n\n".join(rows[150:]) + "\n").encode()))  # two gzip members
    src = list_sources([str(path)])[0]
    assert [d for d, _ in documents(src)] == [json.loads(r)["text"] for r in rows]
    assert src.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    rows[200] = "{not json"  # line 150 + 2 * 50 + 1 of the file
    path.write_bytes(gzip.compress(("\n".join(rows[:150]) + "\n").encode())
                     + gzip.compress(("\n\n".join(rows[150:]) + "\n").encode()))
    with pytest.raises(DataError, match="line 251 is not JSON"):
        list(documents(list_sources([str(path)])[0]))
    path.write_bytes(gzip.compress(("\n".join(rows[:150]) + "\n").encode())[:-30])
    with pytest.raises(DataError, match="not a readable gzip file"):
        list(documents(list_sources([str(path)])[0]))
    (tmp_path / "b.jsonl").write_bytes(b'{"text": "ok"}\n' * 20 + b'{"text": "caf\xe9"}\n')
    with pytest.raises(DataError, match=r"line 21 is not valid UTF-8 \(bad byte at offset 313\)"):
        list(documents(list_sources([str(tmp_path / "b.jsonl")])[0]))


def test_a_source_that_changes_between_passes_is_refused(tmp_path):
    src = source(tmp_path, b"first version\n\nof the text")
    list(documents(src, "paragraph"))  # e.g. the characters pass
    (tmp_path / "t.txt").write_bytes(b"second version\n\nof the text")
    with pytest.raises(DataError, match="changed while preparing"):
        list(documents(src, "paragraph"))


def test_characters_of_a_batch_encode_as_each_document_alone():
    """CharEncoder encodes a batch's text at once and puts end-of-text after each document's ids."""
    from tinyllm.data.encode import CharEncoder, joined
    from tinyllm.data.tokenizers import CharTokenizer

    docs = [messy_text(30, s) for s in range(20)] + ["", "🙂", "猫 x"]
    tok = CharTokenizer(sorted(set("".join(docs))), bos=True)
    got = CharEncoder(tok).encode_documents(docs, "t")
    assert list(got) == list(joined([tok.encode(d) for d in docs], tok.bos_id))


class WatchedEncoder(BPEEncoder):
    """The real encoder, noting how many characters go to the tokenizers library at once."""

    def _tokenizers(self, flat, where):
        self.sent = getattr(self, "sent", []) + [sum(map(len, flat))]
        return super()._tokenizers(flat, where)


def test_the_tiktoken_check_encodes_a_sample_not_a_whole_long_document():
    """tiktoken is checked against the tokenizers library on SAMPLE_CHARS: on a 16 MB piece of a long document
    the check encoded all of it (tokenizers' Encoding objects: 1 GB of memory, most of the time)."""
    text = messy_text(40_000, 5).replace("\r", "")
    enc = WatchedEncoder(train_bpe([text[:20_000]], 300, bos=True))
    if enc.engine != "tiktoken":
        pytest.skip("tiktoken is not installed")
    enc.encode([text], "t")
    assert enc.engine == "tiktoken" and enc.sent == [BPEEncoder.SAMPLE_CHARS] < [len(text)]


def test_a_tokenizer_that_does_not_split_like_gpt2_is_never_cut():
    """A prefix space (or SentencePiece's marker) would start every piece: the ids of pieces differ from the
    whole's, so such a document is encoded whole."""
    from types import SimpleNamespace

    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    from tinyllm.data.encode import BPEEncoder, PIECE_CHARS, encode_stream

    words = "alpha beta gamma delta\nepsilon zeta eta\ntheta iota kappa\n"
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tk.train_from_iterator([words] * 20, trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                                             initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    enc = BPEEncoder(SimpleNamespace(tk=tk, bos_id=tk.token_to_id("<|endoftext|>")))
    doc = words * (PIECE_CHARS // len(words) + 50)  # longer than a piece
    whole = tk.encode(doc, add_special_tokens=False).ids
    assert list(enc.encode([doc], "doc")[0]) == whole
    chunks = [(doc[i:i + 997], i) for i in range(0, len(doc), 997)]
    streamed = [t for ids, _ in encode_stream(enc, chunks, "doc") for t in ids]
    assert streamed == whole
