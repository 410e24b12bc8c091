"""What `tinyllm prepare` reads: text files, folders of them, JSONL (.jsonl, .jsonl.gz) and Parquet.

    list_sources(["books/", "extra.jsonl.gz"], glob="*.txt") -> [Source, ...]   (checked before any is read)
    for text, done in documents(source, opts): ...                             (done: bytes of the file read)

Every way a source can be unusable is one DataError naming the file (and the line
or byte offset): a folder with no matching file, a JSONL line that is not JSON or
lacks the field, a Parquet column that is not text, text that is not UTF-8, a file
that vanished after it was listed or changed between two reads. Each source's size and
sha256 go into the manifest.

No source needs to fit in memory but a Parquet file. Text is read CHUNK_BYTES at a time, decoded,
cleaned and split into documents as it comes (the documents split_documents makes of the whole text; one
paragraph or line is held whole); a "file" document larger than a chunk is a LongDocument, read again
from its file on each pass and never held whole. JSONL is read a line at a time (through gzip for
.jsonl.gz). A Parquet file is read whole, hashed and parsed from memory, so a file that changes meanwhile
cannot mix two versions (a Hugging Face shard is a few hundred MB); its rows go out a row group at a time.
"""
from __future__ import annotations

import codecs
import fnmatch
import gzip
import hashlib
import io
import json
import os
import zlib
from dataclasses import dataclass

from ..errors import DataError
from .files import path_problem

DOCUMENTS = ("file", "paragraph", "line")
PARQUET_INSTALL = "pip install 'tinyllm[parquet]' (or: pip install pyarrow)"
CHUNK_BYTES = 1 << 24   # of a source read at a time: what a text source costs in memory (tests make it tiny)


@dataclass
class Source:
    path: str
    kind: str        # "text", "jsonl" or "parquet"
    size: int        # bytes on disk when listed
    sha256: str = ""
    documents: int = 0


def _kind(path: str) -> str:
    low = path.lower()
    if low.endswith((".jsonl", ".jsonl.gz")):
        return "jsonl"
    if low.endswith(".parquet"):
        return "parquet"
    return "text"


def _walk(folder: str, glob: str) -> list:
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        found += [os.path.join(root, f) for f in sorted(files) if fnmatch.fnmatch(f, glob)]
    return found


def list_sources(srcs: list, glob: str = "*.txt") -> list:
    """Every file the SRC arguments name, in order (a folder: its files matching glob, recursively, sorted)."""
    out = []
    for src in srcs:
        if os.path.isdir(src):
            files = _walk(src, glob)
            if not files:
                raise DataError(f"folder {src!r} has no files matching {glob!r} (searched recursively); "
                                f"give --glob the pattern its files match, e.g. --glob '*.md'")
        else:
            problem = path_problem(src)
            if problem:
                raise DataError(f"source {src!r} {problem}; give prepare text files, folders, .jsonl(.gz) "
                                f"or .parquet files")
            files = [src]
        out += [Source(f, _kind(f), os.path.getsize(f)) for f in files]
    return out


def is_val(doc, seed: int, fraction: float) -> bool:
    """The seeded split: a document's keyed hash as a fraction of 2**64, below `fraction` -> val. A
    LongDocument is hashed as it is read (its cleaned UTF-8, as `doc.encode` gives for a str)."""
    h = hashlib.blake2b(digest_size=8, key=str(seed).encode())
    if isinstance(doc, LongDocument):
        for b, _ in doc.utf8_chunks():
            h.update(b)
    else:
        h.update(doc.encode("utf-8", "surrogatepass"))
    return int.from_bytes(h.digest(), "little") < fraction * 2 ** 64


def _open(src: Source):
    try:
        return open(src.path, "rb")
    except FileNotFoundError:
        raise DataError(f"source {src.path!r} vanished while preparing (it was there when the sources were "
                        f"listed); restore it or leave it out, then prepare again") from None
    except OSError as e:
        raise _unreadable(src, e) from None


def _unreadable(src: Source, e: OSError) -> DataError:
    return DataError(f"cannot read source {src.path!r}: {e.strerror or e}; check its permissions")


def _set_sha256(src: Source, digest: str) -> None:
    """The sha256 of a whole read; a second pass that reads other bytes than the first is refused."""
    if src.sha256 and src.sha256 != digest:
        raise DataError(f"source {src.path!r} changed while preparing (two reads gave different bytes); "
                        f"prepare again when nothing writes to it")
    src.sha256 = digest


def _read_bytes(src: Source) -> bytes:
    with _open(src) as f:
        try:
            raw = f.read()
        except OSError as e:
            raise _unreadable(src, e) from None
    _set_sha256(src, hashlib.sha256(raw).hexdigest())
    return raw


def _raw_chunks(src: Source):
    """(bytes, bytes of the file read so far), CHUNK_BYTES at a time; the sha256 is set at the end."""
    sha, done = hashlib.sha256(), 0
    with _open(src) as f:
        while True:
            try:
                b = f.read(CHUNK_BYTES)
            except OSError as e:
                raise _unreadable(src, e) from None
            if not b:
                break
            sha.update(b)
            done += len(b)
            yield b, done
    _set_sha256(src, sha.hexdigest())


def _decode(raw: bytes, where: str, base: int = 0, decoder=None, final: bool = True) -> str:
    """raw as UTF-8 (through an incremental decoder, which may hold an unfinished character back); a bad
    byte is named by its offset in the file, base being raw's."""
    held = len(decoder.getstate()[0]) if decoder else 0
    try:
        return decoder.decode(raw, final) if decoder else raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{where} is not valid UTF-8 (bad byte at offset {base - held + e.start}); convert it, "
                        f"e.g. iconv -f latin1 -t utf-8") from None


def _utf8_pieces(raw_chunks, where: str):
    """(text, done) for (bytes, done): the file decoded as it is read."""
    decoder, done = codecs.getincrementaldecoder("utf-8")(), 0
    for b, done in raw_chunks:
        yield _decode(b, where, done - len(b), decoder, final=False), done
    yield _decode(b"", where, done, decoder), done


def _cleaned(pieces, bom, cr, lf):
    """clean_text's effect on a text given in pieces (str; or bytes, its UTF-8, where neither a BOM's bytes
    nor \\r nor \\n occur inside a character): a BOM dropped at the start only, \\r\\n and \\r made \\n; a \\r
    at a piece's end waits for the next piece, which may start with its \\n."""
    at_start, held, done = True, bom[:0], 0
    for piece, done in pieces:
        piece, held = held + piece, bom[:0]
        if at_start:
            if len(piece) < len(bom) and bom.startswith(piece):  # all of it may still be a BOM
                held = piece
                continue
            at_start = False
            if piece.startswith(bom):
                piece = piece[len(bom):]
        if piece.endswith(cr):
            piece, held = piece[:-1], cr
        if cr in piece:
            piece = piece.replace(cr + lf, lf).replace(cr, lf)
        yield piece, done
    if held:
        yield (lf if held == cr else held), done


def _text_pieces(src: Source):
    """(text, done): a text file decoded and cleaned as it is read."""
    return _cleaned(_utf8_pieces(_raw_chunks(src), f"text file {src.path!r}"), "\ufeff", "\r", "\n")


class LongDocument:
    """A "file" document larger than CHUNK_BYTES: never held whole, its file is read again on each pass.
    chunks() gives its text and utf8_chunks() its UTF-8 (what is_val hashes), piece by piece; head(n) its
    first n characters."""

    def __init__(self, src: Source):
        self.src = src

    def chunks(self):
        return _text_pieces(self.src)

    def utf8_chunks(self):
        """Not decoded (a bad byte is found by chunks()): the bytes cleaned as chunks() cleans the text."""
        return _cleaned(_raw_chunks(self.src), b"\xef\xbb\xbf", b"\r", b"\n")

    def head(self, n: int) -> str:
        out, have = [], 0
        for text, _ in self.chunks():
            out.append(text[:n - have])
            have += len(out[-1])
            if have >= n:
                break
        return "".join(out)


def split_documents(text: str, mode: str) -> list:
    """A text's documents: the whole text, its blank-line-separated paragraphs, or its lines (blank ones dropped)."""
    if mode == "file":
        return [text] if text.strip() else []
    parts = text.split("\n\n") if mode == "paragraph" else text.split("\n")
    return [p.strip("\n") for p in parts if p.strip()]


def _split_pieces(pieces, mode: str):
    """(documents, done) for each (text, done): split_documents of the whole text, given in pieces. What follows
    a piece's last separator waits for the next piece (str.split finds the same separators in a prefix)."""
    sep = "\n\n" if mode == "paragraph" else "\n"
    held = []  # the text after the last separator, as pieces while none comes (no quadratic joining)
    done = 0
    for text, done in pieces:
        if sep not in text:  # (a separator across the edge is found once one comes in a later piece)
            held.append(text)
            continue
        parts = ("".join(held) + text).split(sep)
        held = [parts.pop()]
        yield [p.strip("\n") for p in parts if p.strip()], done
    yield split_documents("".join(held), mode), done


def _file_document(src: Source):
    """The file as one document, unless it is blank: a str when it fits a chunk, else a LongDocument (read up
    to its first non-space character here, to know it is not blank)."""
    if src.size <= CHUNK_BYTES:
        yield from split_documents("".join(t for t, _ in _text_pieces(src)), "file")
        return
    pieces = _text_pieces(src)
    try:
        blank = all(not text.strip() for text, _ in pieces)  # stops at the first non-space
    finally:
        pieces.close()
    if not blank:
        yield LongDocument(src)


def _text_documents(src: Source, mode: str):
    if mode == "file":
        for doc in _file_document(src):
            yield doc, None
        return
    before = 0
    for docs, done in _split_pieces(_text_pieces(src), mode):
        step = max(1, len(docs) // 16)
        for i, d in enumerate(docs):  # the bar moves through a chunk's documents, not only at its end
            yield d, None if (i + 1) % step and i + 1 < len(docs) else before + (done - before) * (i + 1) // len(docs)
        before = done


class _Hashing(io.RawIOBase):
    """A file's bytes as they are read, into a sha256 (of the file on disk, also under gzip)."""

    def __init__(self, f):
        self.f, self.sha, self.done = f, hashlib.sha256(), 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = self.f.readinto(b)
        self.sha.update(memoryview(b)[:n])
        self.done += n
        return n


def _jsonl_lines(src: Source):
    """(line number, its offset in the (decompressed) text, line, bytes of the file read or None)."""
    with _open(src) as f:
        raw = _Hashing(f)
        buffered = io.BufferedReader(raw, max(1, min(CHUNK_BYTES, 1 << 20)))
        stream = gzip.GzipFile(fileobj=buffered, mode="rb") if src.path.lower().endswith(".gz") else buffered
        start, shown = 0, 0
        for n, line in enumerate(stream, 1):
            yield n, start, line, raw.done if raw.done != shown else None
            start, shown = start + len(line), raw.done
        while buffered.read(1 << 20):  # past the end of the gzip stream: hashed too
            pass
        _set_sha256(src, raw.sha.hexdigest())


def _jsonl_documents(src: Source, field: str):
    try:
        for n, start, line, done in _jsonl_lines(src):
            if not line.strip():
                continue
            where = f"{src.path!r} line {n}"
            try:
                obj = json.loads(_decode(line, where, start))
            except json.JSONDecodeError as e:
                raise DataError(f"{where} is not JSON ({e.msg} at column {e.colno}); give one JSON object a line")
            value = obj.get(field) if isinstance(obj, dict) else None
            if not isinstance(value, str):
                what = "has no" if not isinstance(obj, dict) or field not in obj else "has a non-string"
                raise DataError(f"{where} {what} {field!r} field; give the field that holds the text with --field")
            yield value, done
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise DataError(f"{src.path!r} is not a readable gzip file ({e}); give .jsonl or .jsonl.gz") from None
    except OSError as e:  # a read error in the middle of the file (EIO, a network file system gone)
        raise _unreadable(src, e) from None


def _pyarrow_parquet():
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(f"reading .parquet needs pyarrow, which is not installed: {PARQUET_INSTALL}") from None
    return pq


def _parquet_documents(src: Source, column: str):
    pq = _pyarrow_parquet()
    import pyarrow as pa

    raw = _read_bytes(src)  # hashed whole; parsed from memory, so a later change cannot mix versions
    try:
        pf = pq.ParquetFile(pa.BufferReader(raw))
    except Exception as e:  # pyarrow raises ArrowInvalid and others for a damaged file
        raise DataError(f"{src.path!r} is not a readable Parquet file ({str(e)[:100]})") from None
    schema = pf.schema_arrow
    if column not in schema.names:
        raise DataError(f"{src.path!r} has no column {column!r} (it has {', '.join(schema.names)}); "
                        f"give the text column with --column")
    typ = schema.field(column).type
    if not (pa.types.is_string(typ) or pa.types.is_large_string(typ)):
        raise DataError(f"{src.path!r} column {column!r} holds {typ}, not text (string); give a text column "
                        f"with --column")
    n = pf.num_row_groups
    for g in range(n):
        values = pf.read_row_group(g, columns=[column]).column(0).to_pylist()
        for i, v in enumerate(values):
            if v is not None:
                yield v, src.size * (g + 1) // n if i == len(values) - 1 else None


def documents(src: Source, mode: str = "file", field: str = "text", column: str = "text"):
    """(document, bytes of the file done so far or None) for each document of a source: its text, or a
    LongDocument (a "file" document larger than CHUNK_BYTES) to read in pieces."""
    if src.kind == "jsonl":
        gen = _jsonl_documents(src, field)
    elif src.kind == "parquet":
        gen = _parquet_documents(src, column)
    else:
        gen = _text_documents(src, mode)
    for doc, done in gen:
        src.documents += 1
        yield doc, done
