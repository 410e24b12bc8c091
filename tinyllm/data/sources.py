"""What `tinyllm prepare` reads: text files, folders of them, JSONL (.jsonl, .jsonl.gz) and Parquet.

    list_sources(["books/", "extra.jsonl.gz"], glob="*.txt") -> [Source, ...]   (checked before any is read)
    for text, done in documents(source, opts): ...                             (done: bytes of the file read)

Every way a source can be unusable is one DataError naming the file (and the line
or byte offset): a folder with no matching file, a JSONL line that is not JSON or
lacks the field, a Parquet column that is not text, text that is not UTF-8, a file
that vanished after it was listed. Each source's size and sha256 go into the manifest.
"""
from __future__ import annotations

import fnmatch
import gzip
import hashlib
import json
import os
import zlib
from dataclasses import dataclass

from ..errors import DataError
from .datasets import clean_text
from .files import path_problem

DOCUMENTS = ("file", "paragraph", "line")
PARQUET_INSTALL = "pip install 'tinyllm[parquet]' (or: pip install pyarrow)"


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


def is_val(doc: str, seed: int, fraction: float) -> bool:
    """The seeded split: a document's keyed hash as a fraction of 2**64, below `fraction` -> val."""
    h = hashlib.blake2b(doc.encode("utf-8", "surrogatepass"), digest_size=8, key=str(seed).encode())
    return int.from_bytes(h.digest(), "little") < fraction * 2 ** 64


def _read_bytes(src: Source) -> bytes:
    try:
        with open(src.path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise DataError(f"source {src.path!r} vanished while preparing (it was there when the sources were "
                        f"listed); restore it or leave it out, then prepare again") from None
    except OSError as e:
        raise DataError(f"cannot read source {src.path!r}: {e.strerror}; check its permissions") from None
    src.sha256 = hashlib.sha256(raw).hexdigest()
    return raw


def _decode(raw: bytes, where: str, base: int = 0) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{where} is not valid UTF-8 (bad byte at offset {base + e.start}); convert it, "
                        f"e.g. iconv -f latin1 -t utf-8") from None


def split_documents(text: str, mode: str) -> list:
    """A text's documents: the whole text, its blank-line-separated paragraphs, or its lines (blank ones dropped)."""
    if mode == "file":
        return [text] if text.strip() else []
    parts = text.split("\n\n") if mode == "paragraph" else text.split("\n")
    return [p.strip("\n") for p in parts if p.strip()]


def _text_documents(src: Source, mode: str):
    raw = _read_bytes(src)
    text, _ = clean_text(_decode(raw, f"text file {src.path!r}"))
    docs = split_documents(text, mode)
    step = max(1, len(docs) // 64)
    for i, d in enumerate(docs):
        yield d, None if (i + 1) % step and i + 1 < len(docs) else src.size * (i + 1) // len(docs)


def _jsonl_lines(src: Source, raw: bytes):
    data = gzip.decompress(raw) if src.path.lower().endswith(".gz") else raw
    start = 0
    for n, line in enumerate(data.split(b"\n"), 1):
        yield n, start, line, len(data)
        start += len(line) + 1


def _jsonl_documents(src: Source, field: str):
    try:
        raw = _read_bytes(src)
        lines = _jsonl_lines(src, raw)
        for n, start, line, total in lines:
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
            yield value, src.size * (start + len(line) + 1) // max(1, total)
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise DataError(f"{src.path!r} is not a readable gzip file ({e}); give .jsonl or .jsonl.gz") from None


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
    """(document text, bytes of the file done so far or None) for each document of a source."""
    if src.kind == "jsonl":
        gen = _jsonl_documents(src, field)
    elif src.kind == "parquet":
        gen = _parquet_documents(src, column)
    else:
        gen = _text_documents(src, mode)
    for doc, done in gen:
        src.documents += 1
        yield doc, done
