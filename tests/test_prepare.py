"""tinyllm prepare (issue 25): sources -> token shards + manifest, trained from by memory map; bad input is one
line, exit 2 (a full disk 3), and leaves no DIR behind."""
import gzip
import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from backends.shards import HEADER_BYTES
from tinyllm import Trainer, TrainConfig
from tinyllm.cli import main
from tinyllm.data.shards import load_prepared
from tinyllm.data.sources import documents, list_sources
from tinyllm.errors import DataError

TINY = dict(n_layer=1, n_head=2, n_embd=16, block_size=8, batch_size=4, eval_iters=2, samples=0, device="cpu")
WORDS = "the quick brown fox jumps over a lazy dog while seven wizards quietly hex jolly kings".split()


def texts(n: int, seed: int = 0) -> list:
    r = random.Random(seed)
    return [" ".join(r.choice(WORDS) for _ in range(r.randint(20, 60))) + "." for _ in range(n)]


def prepare(tmp_path, *args, out="data"):
    code = main(["prepare", *map(str, args), "--out", str(tmp_path / out), "--no-progress"])
    return code, tmp_path / out


def train(data, out, **kw):
    return Trainer(TrainConfig(data=str(data), out=str(out), **{"steps": 4, "eval_interval": 2, **TINY, **kw}),
                   verbose=False).fit()


def val_documents(folder) -> list:
    """The val split's documents, decoded from its shards by numpy (a reader independent of tinyllm's)."""
    ds = load_prepared(str(folder))
    m = json.load(open(os.path.join(folder, "manifest.json")))
    ids = np.concatenate([np.fromfile(os.path.join(folder, s["file"]), dtype="<u2", offset=HEADER_BYTES)
                          for s in m["val"]["shards"]])
    cuts = np.flatnonzero(ids == m["eot_id"])
    return [ds.tokenizer.decode(ids[a + 1:b].tolist()) for a, b in zip(cuts[:-1], cuts[1:])]


def no_leftovers(tmp_path, out="data"):
    assert not (tmp_path / out).exists()
    assert not [p for p in os.listdir(tmp_path) if ".partial" in p]


def test_folder_of_txt_prepares_and_trains(tmp_path):
    docs = texts(40)
    for i, d in enumerate(docs):
        sub = tmp_path / "src" / f"part{i % 3}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"{i}.txt").write_text(d)
    (tmp_path / "src" / "notes.md").write_text("not read: only *.txt")
    code, out = prepare(tmp_path, tmp_path / "src")
    assert code == 0
    m = json.load(open(out / "manifest.json"))
    assert len(m["sources"]) == 40 and m["dtype"] == "uint16" and m["documents"] == "file"
    assert m["train"]["documents"] + m["val"]["documents"] == 40 and m["val"]["documents"] >= 1
    got = val_documents(out)
    assert len(got) == m["val"]["documents"] and all(d in docs for d in got)  # whole documents, never cut
    t = train(out, tmp_path / "run")
    assert t.step == 4 and all(np.isfinite(t.losses))


def test_jsonl_gz_with_bpe_prepares_and_trains(tmp_path):
    rows = [json.dumps({"id": i, "text": d}) for i, d in enumerate(texts(60))]
    with gzip.open(tmp_path / "a.jsonl.gz", "wt") as f:
        f.write("\n".join(rows[:30]) + "\n")
    (tmp_path / "b.jsonl").write_text("\n".join(rows[30:]) + "\n")
    code, out = prepare(tmp_path, tmp_path / "a.jsonl.gz", tmp_path / "b.jsonl", "--tokenizer", "bpe",
                        "--vocab-size", "300")
    assert code == 0
    m = json.load(open(out / "manifest.json"))
    assert m["tokenizer"]["type"] == "bpe" and m["vocab_size"] == 300
    assert [s["documents"] for s in m["sources"]] == [30, 30]
    assert train(out, tmp_path / "run").step == 4


def test_parquet_prepares_and_trains(tmp_path):
    pa = pytest.importorskip("pyarrow", reason="pyarrow is not installed (pip install 'tinyllm[parquet]')")
    import pyarrow.parquet as pq

    docs = texts(50)
    pq.write_table(pa.table({"n": list(range(50)), "text": docs}), tmp_path / "d.parquet", row_group_size=16)
    code, out = prepare(tmp_path, tmp_path / "d.parquet")
    assert code == 0
    assert all(d in docs for d in val_documents(out))
    assert train(out, tmp_path / "run").step == 4


def _shakespeare_like(tmp_path):
    (tmp_path / "book.txt").write_text("\n\n".join(texts(80, seed=1)))
    return prepare(tmp_path, tmp_path / "book.txt")[1]


def test_resume_is_exact_and_refused_on_changed_shards(tmp_path, capsys):
    out = _shakespeare_like(tmp_path)
    straight = train(out, tmp_path / "a", steps=6)
    t = Trainer(TrainConfig(data=str(out), out=str(tmp_path / "c"), steps=6, eval_interval=2, **TINY), verbose=False)
    t.fit(until=3)
    resumed = Trainer(TrainConfig(out=str(tmp_path / "c"), resume=True, device="cpu"), verbose=False).fit()
    assert resumed.losses == straight.losses
    (tmp_path / "book.txt").write_text("\n\n".join(texts(80, seed=2)))
    assert main(["prepare", str(tmp_path / "book.txt"), "--out", str(out), "--overwrite", "--no-progress"]) == 0
    capsys.readouterr()
    code = main(["train", "--resume", "--out", str(tmp_path / "c"), "--steps", "8"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "changed" in err and len(err.splitlines()) == 1


def test_truncated_or_edited_shards_are_refused(tmp_path):
    out = _shakespeare_like(tmp_path)
    shard = out / "train-00000.bin"
    raw = shard.read_bytes()
    shard.write_bytes(raw[:-10])
    with pytest.raises(DataError, match="bytes, the manifest says"):
        load_prepared(str(out))
    shard.write_bytes(raw[:HEADER_BYTES] + bytes([raw[HEADER_BYTES] ^ 1]) + raw[HEADER_BYTES + 1:])
    with pytest.raises(DataError, match="sha256"):
        load_prepared(str(out))


BAD = {
    "empty folder": (lambda p: (p / "src").mkdir() or [p / "src"], "no files matching '*.txt'"),
    "not json": (lambda p: (p / "a.jsonl").write_text('{"text": "ok"}\n{text: oops}\n') and [p / "a.jsonl"],
                 "a.jsonl' line 2 is not JSON"),
    "no field": (lambda p: (p / "a.jsonl").write_text('{"text": "ok"}\n{"body": "x"}\n') and [p / "a.jsonl"],
                 "line 2 has no 'text' field"),
    "not utf-8": (lambda p: (p / "a.txt").write_bytes(b"fine text\n\ncaf\xe9 au lait") and [p / "a.txt"],
                  "not valid UTF-8 (bad byte at offset 14)"),
    "bad gzip": (lambda p: (p / "a.jsonl.gz").write_bytes(b"not gzip at all") and [p / "a.jsonl.gz"],
                 "not a readable gzip file"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_exit_2_and_no_dir(tmp_path, capsys, case):
    make, message = BAD[case]
    code, _ = prepare(tmp_path, *make(tmp_path))
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1, err
    no_leftovers(tmp_path)


def test_parquet_column_that_is_not_text(tmp_path, capsys):
    pa = pytest.importorskip("pyarrow", reason="pyarrow is not installed (pip install 'tinyllm[parquet]')")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": [1, 2, 3]}), tmp_path / "d.parquet")
    code, _ = prepare(tmp_path, tmp_path / "d.parquet")
    err = capsys.readouterr().err.strip()
    assert code == 2 and "column 'text' holds int64, not text" in err and len(err.splitlines()) == 1
    no_leftovers(tmp_path)


def test_a_source_that_vanishes_after_listing(tmp_path):
    (tmp_path / "a.txt").write_text("some text")
    (src,) = list_sources([str(tmp_path / "a.txt")])
    os.remove(tmp_path / "a.txt")
    with pytest.raises(DataError, match="vanished while preparing"):
        list(documents(src))


def test_a_full_disk_is_exit_3_with_nothing_left(tmp_path):
    """A real write error: the file-size limit (EFBIG, as ENOSPC goes the same way) in a child process."""
    (tmp_path / "big.txt").write_text("\n\n".join(texts(400)))
    code = ("import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
            "resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000)); from tinyllm.cli import main; "
            f"sys.exit(main(['prepare', {str(tmp_path / 'big.txt')!r}, '--out', {str(tmp_path / 'data')!r}, "
            "'--no-progress']))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 3, p.stderr
    assert "file-size limit" in p.stderr and "free there now" in p.stderr and len(p.stderr.splitlines()) == 1
    no_leftovers(tmp_path)


def test_an_existing_out_is_kept(tmp_path, capsys):
    (tmp_path / "a.txt").write_text("\n\n".join(texts(20)))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "mine.txt").write_text("keep")
    code, out = prepare(tmp_path, tmp_path / "a.txt")
    assert code == 2 and "not prepared data" in capsys.readouterr().err
    assert (out / "mine.txt").read_text() == "keep"


def test_sigterm_during_prepare_is_exit_143_with_nothing_left(tmp_path):
    """`kill` (a job scheduler) mid-prepare stops it as Ctrl-C does: the partial DIR is removed, exit 143."""
    chunk = "\n\n".join(texts(200)) + "\n\n"
    (tmp_path / "big.txt").write_text(chunk * (30_000_000 // len(chunk)))  # ~30 MB: seconds to prepare
    p = subprocess.Popen([sys.executable, "-m", "tinyllm", "prepare", str(tmp_path / "big.txt"), "--out",
                          str(tmp_path / "data"), "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    partial = tmp_path / f".data.partial-{p.pid}"
    deadline = time.monotonic() + 60
    while not partial.exists() and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert partial.exists(), "prepare ended before it could be stopped"
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 143, err
    assert "SIGTERM" in err and len(err.strip().splitlines()) == 1, err
    no_leftovers(tmp_path)


def test_bpe_through_tiktoken_gives_the_tokenizers_ids():
    """prepare encodes BPE with tiktoken (threads, documents joined by <|endoftext|>) when installed: the ids are
    tokenizers' own, document by document, for short and long documents; a literal <|endoftext|> in a
    text is that token in both."""
    pytest.importorskip("tiktoken")
    from tinyllm.data.bpe import train_bpe
    from tinyllm.data.encode import BPEEncoder, joined

    docs = texts(300) + ["\n".join(texts(3000, seed=1))] + ["a text that says <|endoftext|> as words"]
    tok = train_bpe(docs[:100], 300, bos=True)
    enc = BPEEncoder(tok)
    assert enc.engine == "tiktoken"
    ids = [tok.tk.encode(d, add_special_tokens=False).ids for d in docs]
    assert list(enc.encode_documents(docs, "t")) == list(joined(ids, tok.bos_id))
    assert ids[-1].count(tok.bos_id) == 1
