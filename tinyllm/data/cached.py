"""`--data FILE` and the named datasets, written once as token shards in a cache, so a run trains from every
dataset the one way: ShardBatcher over a prepared folder (data/shards.py).

    ds = cached_dataset("names")          # a Dataset whose train / val are backends.shards.ShardSets

On a miss load_dataset reads and tokenizes the source as always (its split: a seeded shuffle of whole lines,
or the first 90% of a text), and each split is written as one shard, beginning and ending where the stream
does: the same tokens in the same places, so a seed draws the same batches as an in-memory stream would. Each
line of a line dataset is a document, <bos> its end-of-text. A hit reads no text and trains no tokenizer (a
--resume of a BPE run starts at once). The key is a hash of the source's bytes, how they are read (--lines,
--raw-text), the tokenizer and tinyllm's version; an entry is written in a temporary folder and renamed into
place, so ranks of one launch and runs side by side may race and one entry wins.

Where: $TINYLLM_CACHE_DIR, else $XDG_CACHE_HOME/tinyllm, else ~/.cache/tinyllm (data/KEY/, 2 bytes a token);
when that cannot be written, a temporary folder that is removed as soon as its shards are open.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile

from backends.env import given
from backends.shards import ShardWriter, itemsize_for

from ..errors import DataError, DiskFull
from ..memory import human_bytes, shortfall
from ..version import __version__
from .datasets import DATASETS, LOAD_BYTES_PER_BYTE, arithmetic_problems, load_dataset, names_text, read_text_file
from .files import path_problem
from .shards import FORMAT, MANIFEST, load_prepared, write_manifest

KEY_VERSION = 1  # bump when what load_dataset makes of the same bytes changes
WRITE_TOKENS = 1 << 20


def cache_root() -> str:
    """The folder cached datasets live under (the table in backends/env.py)."""
    root = given("TINYLLM_CACHE_DIR")
    if root is None:
        root = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "tinyllm")
    return os.path.join(os.path.abspath(root), "data")


def stream_fingerprint(train, val) -> str:
    """A hash of the token streams in their compact type (what a checkpoint stores as the data's fingerprint)."""
    h = hashlib.sha256()
    for split in (train, val):
        h.update(memoryview(split).cast("B"))
        h.update(b"|")
    return h.hexdigest()[:16]


def source_digest(spec: str) -> str:
    """sha256 of what the dataset is made from: the embedded names, the generated problems, or the file's
    bytes (read in chunks; a path that is not a regular file, or a file too large to load, gets
    read_text_file's one-line DataError before a byte is hashed)."""
    h = hashlib.sha256()
    if spec in DATASETS:
        h.update((names_text() if spec == "names" else "\n".join(arithmetic_problems())).encode())
        return h.hexdigest()
    if path_problem(spec) or shortfall(LOAD_BYTES_PER_BYTE * os.path.getsize(spec)):
        read_text_file(spec)  # raises, naming what the path is or the memory loading it takes
    try:
        with open(spec, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
    except OSError as e:
        raise DataError(f"cannot read data file {spec!r}: {e.strerror}; check its permissions") from None
    return h.hexdigest()


def entry_key(digest: str, lines, raw_text: bool, tokenizer_key: str) -> str:
    parts = {"v": KEY_VERSION, "tinyllm": __version__, "source": digest, "lines": lines, "raw_text": raw_text,
             "tokenizer": tokenizer_key}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def cached_dataset(spec: str = "names", lines: bool | None = None, tokenizer=None, raw_text: bool = False):
    """load_dataset's Dataset (seed 0) from the cache's shards: train / val are ShardSets; info holds the
    stream fingerprint, ds.lines is True for a line dataset (the lines themselves are not kept).
    tokenizer: None or a maker as load_dataset takes; a maker without a `key` attribute is never cached."""
    tok_key = "own" if tokenizer is None else getattr(tokenizer, "key", None)
    digest = source_digest(spec)
    folder = None if tok_key is None else os.path.join(cache_root(), entry_key(digest, lines, raw_text, tok_key))
    if folder is not None and os.path.isfile(os.path.join(folder, MANIFEST)):
        try:
            return _load_entry(folder)
        except DataError:  # damaged or cut short: made again below
            shutil.rmtree(folder, ignore_errors=True)
    ds = load_dataset(spec, seed=0, lines=lines, tokenizer=tokenizer, raw_text=raw_text)
    if folder is None:
        return _in_temporary(ds, spec, digest)
    try:
        _publish(folder, ds, spec, digest)
    except OSError:  # the cache cannot be written (read-only home, full disk): a temporary folder instead
        return _in_temporary(ds, spec, digest)
    return _load_entry(folder)


def _publish(folder: str, ds, spec: str, digest: str) -> None:
    """Write ds as an entry beside folder, then rename it into place; a rank or run that got there first wins
    (its entry holds the same tokens). OSError when the cache cannot be written; nothing partial stays."""
    os.makedirs(os.path.dirname(folder), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(folder)}.partial-", dir=os.path.dirname(folder))
    try:
        write_entry(tmp, ds, spec, digest)
        os.rename(tmp, folder)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if os.path.isfile(os.path.join(folder, MANIFEST)):  # another process published it first
            return
        raise
    except BaseException:  # Ctrl-C: no partial entry
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _in_temporary(ds, spec: str, digest: str):
    """ds as shards in a temporary folder, removed once they are open (the open files stay readable)."""
    tmp = tempfile.mkdtemp(prefix="tinyllm-data-")
    try:
        write_entry(tmp, ds, spec, digest)
        return _load_entry(tmp)
    except OSError as e:
        need = 4 * (len(ds.train) + len(ds.val))
        raise DiskFull(f"cannot write the token shards of {ds.name} ({human_bytes(need)} at most) in {cache_root()} "
                       f"or {tempfile.gettempdir()}: {e.strerror or e}; set TINYLLM_CACHE_DIR to a folder with "
                       f"room that you can write") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_entry(folder: str, ds, spec: str, digest: str) -> dict:
    """ds's streams as one shard per split in folder, and a manifest that load_prepared reads."""
    tok, is_lines = ds.tokenizer, ds.lines is not None
    itemsize = itemsize_for(tok.vocab_size)
    manifest = {
        "format": FORMAT, "version": 1, "tinyllm": __version__, "tokenizer": tok.to_dict(),
        "vocab_size": tok.vocab_size, "eot_id": tok.bos_id, "dtype": "uint16" if itemsize == 2 else "uint32",
        "documents": "line" if is_lines else "text",
        "sources": [{"path": spec if spec in DATASETS else os.path.abspath(spec), "sha256": digest}],
        "split": {"method": "seeded shuffle of the lines, 90% train" if is_lines else "the first 90% of the text",
                  "seed": 0},
        "dataset": {"name": ds.name, "lines": is_lines, "info": ds.info,
                    "fingerprint": stream_fingerprint(ds.train, ds.val)},
    }
    for split, stream, docs in (("train", ds.train, ds.train_lines), ("val", ds.val, ds.val_lines)):
        w = ShardWriter(os.path.join(folder, f"{split}-00000.bin"), itemsize)
        try:
            for i in range(0, len(stream), WRITE_TOKENS):  # in pieces: no whole-stream copy beside the stream
                w.write(stream[i:i + WRITE_TOKENS])
            count, sha = w.close()
        except BaseException:
            w.abandon()
            raise
        shard = {"file": f"{split}-00000.bin", "tokens": count, "bytes": os.path.getsize(w.path), "sha256": sha}
        manifest[split] = {"tokens": count, "documents": len(docs) if is_lines else 1, "shards": [shard]}
    write_manifest(folder, manifest)
    return manifest


def _load_entry(folder: str):
    """The entry as a Dataset named and described as load_dataset's was (info without the folder's path:
    a cache entry is not the user's prepared data)."""
    ds = load_prepared(folder)
    with open(os.path.join(folder, MANIFEST), encoding="utf-8") as f:
        about = json.load(f).get("dataset") or {}
    if not isinstance(about.get("fingerprint"), str):
        raise DataError(f"{folder} is not a cached dataset")
    ds.name, ds.info = about.get("name", ds.name), {**about.get("info", {}), "fingerprint": about["fingerprint"]}
    ds.lines = True if about.get("lines") else None
    return ds
