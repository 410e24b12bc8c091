"""One data path (issue 25, item 3): a --data file and the named datasets are tokenized once into the cache's
token shards (tinyllm/data/cached.py) and every run trains from shards, drawing the batches an in-memory
stream would."""
import os
import stat

import numpy as np
import pytest

from backends.shards import ShardSet
from tinyllm import Trainer, TrainConfig
from tinyllm.data import Batcher, load_dataset
from tinyllm.data import cached
from tinyllm.data.cached import cache_root, cached_dataset
from tinyllm.data.shards import ShardBatcher
from tinyllm.errors import TokenIdError

TINY = dict(n_layer=1, n_head=2, n_embd=16, block_size=8, batch_size=4, eval_iters=2, samples=0, device="cpu",
            steps=4, eval_interval=2)
SPEECH = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
          "First Citizen:\nYou are all resolved rather to die than to famish?\n\n") * 40


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYLLM_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "data"


def entries(folder) -> list:
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def text_file(tmp_path, text=SPEECH, name="speech.txt"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return str(p)


@pytest.mark.parametrize("spec", ["names", "arithmetic", "text"])
def test_the_caches_shards_draw_the_batches_of_the_in_memory_streams(backend, cache, tmp_path, spec):
    spec = text_file(tmp_path) if spec == "text" else spec
    mem, ds = load_dataset(spec), cached_dataset(spec)
    assert isinstance(ds.train, ShardSet) and isinstance(ds.val, ShardSet)
    assert ds.tokenizer.to_dict() == mem.tokenizer.to_dict() and ds.name == mem.name
    assert (ds.lines is None) == (mem.lines is None)
    for stream, shards in ((mem.train, ds.train), (mem.val, ds.val)):
        a, b = Batcher(stream, backend, 8), ShardBatcher(shards, backend, 8)
        r1, r2 = backend.rng(3), backend.rng(3)
        for _ in range(3):
            (x1, y1), (x2, y2) = a.batch(5, r1), b.batch(5, r2)
            assert np.array_equal(backend.to_host(x1), backend.to_host(x2))
            assert np.array_equal(backend.to_host(y1), backend.to_host(y2))


def test_the_fingerprint_is_the_streams_as_before_the_cache(cache):
    """A checkpoint made when the streams lived in memory stored this hash: it still resumes."""
    import hashlib

    mem, ds = load_dataset("names"), cached_dataset("names")
    h = hashlib.sha256()
    for split in (mem.train, mem.val):
        h.update(memoryview(split).cast("B"))
        h.update(b"|")
    assert ds.info["fingerprint"] == h.hexdigest()[:16]


def test_a_second_run_reads_the_cache_and_tokenizes_nothing(cache, tmp_path, monkeypatch):
    data = text_file(tmp_path)
    calls = []
    real = cached.load_dataset
    monkeypatch.setattr(cached, "load_dataset", lambda *a, **k: calls.append(a) or real(*a, **k))
    first = Trainer(TrainConfig(data=data, out=str(tmp_path / "a"), **TINY), verbose=False).fit()
    assert len(calls) == 1 and len(entries(cache)) == 1
    second = Trainer(TrainConfig(data=data, out=str(tmp_path / "b"), **TINY), verbose=False).fit()
    assert len(calls) == 1 and len(entries(cache)) == 1
    losses = lambda t: [(e["train"], e["val"]) for e in t.evals]  # noqa: E731
    assert losses(first) == losses(second)  # the same data, the same seed
    assert isinstance(second.dataset.train, ShardSet)


def test_an_edited_file_is_tokenized_again_and_its_resume_warned(cache, tmp_path, capsys):
    data = text_file(tmp_path)
    Trainer(TrainConfig(data=data, out=str(tmp_path / "run"), **TINY), verbose=False).fit()
    text_file(tmp_path, SPEECH.replace("famish", "feast"))  # the same characters: the same tokenizer
    Trainer(TrainConfig(data=data, out=str(tmp_path / "run"), resume=True, **{**TINY, "steps": 6}), verbose=False)
    assert "the data differs from the data the checkpoint was trained on" in capsys.readouterr().err
    assert len(entries(cache)) == 2


def test_a_damaged_entry_is_made_again(cache, tmp_path):
    data = text_file(tmp_path)
    ds = cached_dataset(data)
    shard = ds.train.paths[0]
    del ds
    with open(shard, "r+b") as f:
        f.truncate(os.path.getsize(shard) - 2)
    again = cached_dataset(data)
    assert len(again.train) == len(load_dataset(data).train)


def test_a_cache_that_cannot_be_written_trains_from_a_temporary_folder(tmp_path, monkeypatch):
    if os.geteuid() == 0:
        blocked = tmp_path / "a-file"  # root writes anywhere: a file where the cache's folder should be
        blocked.write_text("x")
    else:
        blocked = tmp_path / "read-only"
        blocked.mkdir()
        os.chmod(blocked, stat.S_IRUSR | stat.S_IXUSR)
    monkeypatch.setenv("TINYLLM_CACHE_DIR", str(blocked))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    os.mkdir(tmp_path / "tmp")
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # TMPDIR is read again
    t = Trainer(TrainConfig(data=text_file(tmp_path), out=str(tmp_path / "run"), **TINY), verbose=False).fit()
    assert t.evals and os.listdir(tmp_path / "tmp") == []  # the temporary shards are gone, their files open


def test_racing_publishers_leave_one_entry_and_no_partial_folder(cache, tmp_path):
    data = text_file(tmp_path)
    ds = load_dataset(data)
    folder = os.path.join(cache_root(), "same-key")
    digest = cached.source_digest(data)
    cached._publish(folder, ds, data, digest)
    cached._publish(folder, ds, data, digest)  # the second finds the first's entry in place
    assert entries(cache) == ["same-key"]


def test_an_interrupted_write_leaves_no_entry(cache, tmp_path, monkeypatch):
    data = text_file(tmp_path)

    def stop(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(cached, "write_manifest", stop)
    with pytest.raises(KeyboardInterrupt):
        cached_dataset(data)
    assert entries(cache) == []


def test_shard_ids_beyond_the_models_vocabulary_are_refused(backend, cache):
    ds = cached_dataset("names")  # 27 tokens
    with pytest.raises(TokenIdError, match="the training data: token id"):
        for _ in range(20):
            ShardBatcher(ds.train, backend, 8, 5, "the training data").batch(4, backend.rng(0))


def test_an_entry_is_written_without_a_copy_of_the_whole_stream(tmp_path):
    """A miss holds the text's streams already; writing them must not add another stream's size or two."""
    import tracemalloc
    from array import array

    from tinyllm.data.datasets import Dataset
    from tinyllm.data.tokenizers import CharTokenizer

    tok = CharTokenizer.from_text("abcdefgh")
    stream = array("B", bytes(range(8)) * (1 << 20))  # 8 MB of ids
    ds = Dataset("big", tok, stream, array("B", bytes(range(8)) * 16))
    tracemalloc.start()
    try:
        cached.write_entry(str(tmp_path), ds, "big.txt", "0" * 64)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < len(stream), f"writing took {peak:,} bytes beside a {len(stream):,}-byte stream"
    assert cached.load_prepared(str(tmp_path)).train.sizes == [len(stream)]


def test_a_tokenizer_maker_without_a_key_is_never_cached(cache, tmp_path):
    """A maker the cache cannot name (a library user's own) gets shards in a temporary folder, every time."""
    from tinyllm.data.tokenizers import CharTokenizer

    data = text_file(tmp_path)
    ds = cached_dataset(data, tokenizer=lambda texts, lines: CharTokenizer.from_text(SPEECH))
    assert isinstance(ds.train, ShardSet) and len(ds.train) == len(load_dataset(data).train)
    assert entries(cache) == []
