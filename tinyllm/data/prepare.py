"""`tinyllm prepare SRC... --out DIR`: tokenize once into memory-mappable shards (docs/data.md).

    manifest = prepare(["books/", "web.jsonl.gz"], PrepareOptions(out="data", tokenizer="bpe"))

Each document (a file, paragraph or line of text; a JSONL record; a Parquet row)
is followed by the end-of-text token (<bos> for characters, <|endoftext|> for
BPE); the val split is the documents whose seeded hash falls below
--val-fraction, so no document is cut. DIR/train-00000.bin... and
DIR/val-00000.bin... (backends/shards.py's format) and manifest.json are written
in a temporary directory beside DIR, renamed to DIR at the end: an error or Ctrl-C
leaves no DIR, and nothing a later train would read.
"""
from __future__ import annotations

import errno
import os
import shutil
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass

from backends.shards import ShardWriter, itemsize_for

from ..errors import DataError, DiskFull, Interrupted, OutputDirError
from ..memory import human_bytes
from ..version import __version__
from .encode import encode_stream, make_encoder
from .prepare_tokenizer import make_tokenizer
from .shards import FORMAT, MANIFEST, write_manifest
from .sources import LongDocument, documents, is_val, list_sources


@dataclass
class PrepareOptions:
    out: str
    glob: str = "*.txt"
    field: str = "text"
    column: str = "text"
    documents: str | None = None      # file / paragraph / line; None: paragraph for one text file, else file
    tokenizer: str = "char"
    vocab_size: int = 512
    tokenizer_from: str | None = None
    val_fraction: float = 0.1
    seed: int = 0
    shard_tokens: int = 100_000_000
    sample_bytes: int = 20_000_000    # of training documents, to train a BPE on
    overwrite: bool = False
    progress: bool = True


class SplitWriter:
    """One split's token stream as shards of at most shard_tokens tokens, starting with end-of-text."""

    def __init__(self, folder: str, split: str, itemsize: int, shard_tokens: int, eot: int):
        self.folder, self.split, self.itemsize, self.cap, self.eot = folder, split, itemsize, shard_tokens, eot
        self.shards, self.cur, self.tokens, self.documents = [], None, 0, 0
        self.write([eot])

    def write(self, ids) -> None:
        i = 0
        while i < len(ids):
            if self.cur is None or self.cur.count >= self.cap:
                self._rotate()
            n = min(len(ids) - i, self.cap - self.cur.count)
            self.cur.write(ids[i:i + n])
            i += n
        self.tokens += len(ids)

    def stream(self, ids, documents: int) -> None:
        """Several documents' ids at once, end-of-text after each: per-document writes cost more than BPE's
        encoding of short documents."""
        self.write(ids)
        self.documents += documents

    def _rotate(self) -> None:
        self._close_current()
        name = f"{self.split}-{len(self.shards):05d}.bin"
        self.cur = ShardWriter(os.path.join(self.folder, name), self.itemsize)
        self.shards.append({"file": name})

    def _close_current(self) -> None:
        if self.cur is not None:
            count, sha = self.cur.close()
            self.shards[-1].update(tokens=count, bytes=os.path.getsize(self.cur.path), sha256=sha)
            self.cur = None

    def close(self) -> list:
        self._close_current()
        return self.shards


def _bar(opts, total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc, dynamic_ncols=True,
                disable=None if opts.progress else True, leave=False)


def _doc_mode(srcs: list, sources: list, opts) -> str:
    if opts.documents is not None:
        return opts.documents
    one_text_file = len(sources) == 1 and sources[0].kind == "text" and not os.path.isdir(srcs[0])
    return "paragraph" if one_text_file else "file"


class _Progress:
    """The bar over every source's bytes, with tokens and tokens/s beside it."""

    def __init__(self, bar):
        self.bar, self.t0, self.tokens = bar, time.perf_counter(), 0

    def show(self, position: int) -> None:
        self.bar.update(position - self.bar.n)
        rate = self.tokens / max(1e-9, time.perf_counter() - self.t0)
        self.bar.set_postfix(tokens=f"{self.tokens:,}", tok_s=f"{rate:,.0f}", refresh=False)


def _encode_all(sources, opts, mode, encoder, writers, bar) -> None:
    """Every document of every source, encoded in batches, into its split's writer; a LongDocument on its own,
    as it is read."""
    progress = _Progress(bar)
    for src in sources:
        done_before = bar.n
        batch, chars = [], 0
        for doc, done in documents(src, mode, opts.field, opts.column):
            if isinstance(doc, LongDocument):
                progress.tokens += _flush(batch, src, opts, encoder, writers)
                batch, chars = [], 0
                _encode_long(doc, opts, encoder, writers, progress, done_before)
                continue
            batch.append(doc)
            chars += len(doc)
            if chars >= encoder.batch_chars:
                progress.tokens += _flush(batch, src, opts, encoder, writers)
                batch, chars = [], 0
            if done is not None:
                progress.show(done_before + done)
        progress.tokens += _flush(batch, src, opts, encoder, writers)
        bar.update(done_before + src.size - bar.n)


def _encode_long(doc, opts, encoder, writers, progress, done_before: int) -> None:
    """One document too large to hold: its split from a first pass that hashes it, then encoded and written
    piece by piece, the bar moving with each."""
    writer = writers["val" if is_val(doc, opts.seed, opts.val_fraction) else "train"]
    for ids, done in encode_stream(encoder, doc.chunks(), doc.src.path):
        writer.write(ids)
        progress.tokens += len(ids)
        progress.show(done_before + done)
    writer.stream([writer.eot], 1)
    progress.tokens += 1


def _flush(batch: list, src, opts, encoder, writers) -> int:
    n, split = 0, {"train": [], "val": []}
    for doc in batch:
        split["val" if is_val(doc, opts.seed, opts.val_fraction) else "train"].append(doc)
    for name, docs in split.items():
        ids = encoder.encode_documents(docs, src.path) if docs else []
        writers[name].stream(ids, len(docs))
        n += len(ids)
    return n


def _check_split(writers: dict, mode: str) -> None:
    tr, va = writers["train"].documents, writers["val"].documents
    if tr and va:
        return
    hint = "" if mode == "line" else (" or split text into documents with --documents "
                                      + ("line" if mode == "paragraph" else "paragraph"))
    raise DataError(f"the split has {tr} training and {va} validation documents; both need one at least: give "
                    f"more documents, change --val-fraction or --seed{hint}")


def _write_manifest(folder: str, sources, tok, mode, opts, writers, itemsize: int) -> dict:
    manifest = {
        "format": FORMAT, "version": 1, "tinyllm": __version__,
        "tokenizer": tok.to_dict(), "vocab_size": tok.vocab_size, "eot_id": tok.bos_id,
        "dtype": "uint16" if itemsize == 2 else "uint32",
        "documents": mode,
        "sources": [{"path": os.path.abspath(s.path), "kind": s.kind, "bytes": s.size, "sha256": s.sha256,
                     "documents": s.documents} for s in sources],
        "split": {"method": "blake2b(document, key=seed) < val_fraction", "seed": opts.seed,
                  "val_fraction": opts.val_fraction},
    }
    for name, w in writers.items():
        manifest[name] = {"tokens": w.tokens, "documents": w.documents, "shards": w.close()}
    write_manifest(folder, manifest)
    return manifest


def _temp_dir(out: str, overwrite: bool) -> str:
    out = os.path.abspath(out)
    if os.path.exists(out) and not (overwrite and os.path.isfile(os.path.join(out, MANIFEST))):
        why = "exists" + ("" if os.path.isfile(os.path.join(out, MANIFEST)) else " and is not prepared data")
        raise OutputDirError(f"--out {out!r} {why}; give a new directory" +
                             (" or --overwrite to replace it" if "not" not in why else ""))
    parent = os.path.dirname(out)
    if not os.path.isdir(parent):
        raise OutputDirError(f"the folder of --out {out!r} does not exist; create {parent!r} first")
    tmp = os.path.join(parent, f".{os.path.basename(out)}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    os.mkdir(tmp)
    return tmp


def _disk_full(e: OSError, out: str, tmp: str) -> DiskFull:
    used = sum(os.path.getsize(os.path.join(tmp, f)) for f in os.listdir(tmp)) if os.path.isdir(tmp) else 0
    free = shutil.disk_usage(os.path.dirname(os.path.abspath(out))).free
    why = "the disk is full" if e.errno != errno.EFBIG else "a file grew past the file-size limit (ulimit -f)"
    return DiskFull(f"cannot write {out!r}: {why} after {human_bytes(used)} of shards ({human_bytes(free)} free "
                    f"there now; nothing was left behind); free some space or prepare into another --out")


@contextmanager
def _sigterm_as_interrupt():
    """SIGTERM (`kill`, a job scheduler) stops prepare as Ctrl-C does: the exception unwinds through the clean-up
    that removes the partial DIR; exit 143. Only the main thread can set a handler; elsewhere it stays as it was."""
    def stop(signum, frame):
        raise Interrupted("prepare stopped by SIGTERM; nothing was written (the partial output was removed)",
                          signal.SIGTERM)

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def prepare(srcs: list, opts: PrepareOptions, log=print) -> dict:
    """Tokenize the sources into opts.out; returns the manifest. DataError / TokenizerError / OutputDirError for
    bad input (exit 2), DiskFull (exit 3), Interrupted on SIGTERM (exit 143); DIR appears only when everything
    was written."""
    with _sigterm_as_interrupt():
        return _prepare(srcs, opts, log)


def _prepare(srcs: list, opts: PrepareOptions, log) -> dict:
    sources = list_sources(srcs, opts.glob)
    mode = _doc_mode(srcs, sources, opts)
    tmp = _temp_dir(opts.out, opts.overwrite)
    try:
        start = time.perf_counter()
        tok = make_tokenizer(sources, mode, opts, lambda desc: _bar(opts, sum(s.size for s in sources), desc))
        itemsize = itemsize_for(tok.vocab_size)
        writers = {s: SplitWriter(tmp, s, itemsize, opts.shard_tokens, tok.bos_id) for s in ("train", "val")}
        with _bar(opts, sum(s.size for s in sources), "prepare") as bar:
            _encode_all(sources, opts, mode, make_encoder(tok), writers, bar)
        _check_split(writers, mode)
        manifest = _write_manifest(tmp, sources, tok, mode, opts, writers, itemsize)
        _move_into_place(tmp, opts.out)
    except OSError as e:  # the sources' own read errors are DataErrors already: this is the writing
        full = e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
        err = _disk_full(e, opts.out, tmp) if full else OutputDirError(
            f"cannot write {opts.out!r}: {e.strerror or e}; check the folder's permissions and space")
        shutil.rmtree(tmp, ignore_errors=True)
        raise err from None
    except BaseException:  # Ctrl-C and every error: no partial DIR
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    secs = time.perf_counter() - start
    mb = sum(s.size for s in sources) / 1e6
    log(f"prepared {len(sources)} source{'s' * (len(sources) != 1)} ({mb:,.1f} MB, "
        f"{manifest['train']['documents'] + manifest['val']['documents']:,} documents) in {secs:.1f}s "
        f"({mb / max(secs, 1e-9):,.1f} MB/s): {manifest['train']['tokens']:,} train / {manifest['val']['tokens']:,} "
        f"val tokens, vocab {tok.vocab_size} ({manifest['dtype']}) in {opts.out}/; train with: "
        f"tinyllm train --data {opts.out}")
    return manifest


def _move_into_place(tmp: str, out: str) -> None:
    """Rename tmp to out; an --overwrite'n DIR is moved aside first and removed after."""
    old = None
    if os.path.exists(out):
        old = tmp + ".old"
        os.rename(out, old)
    os.rename(tmp, out)
    if old:
        shutil.rmtree(old, ignore_errors=True)
