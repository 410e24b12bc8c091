"""Datasets: the embedded names, any UTF-8 text file, generated arithmetic in words.

Every dataset becomes a train and a val token stream (90/10, deterministic by
seed); line datasets join their lines with <bos> so a model learns where a
line starts and ends.
"""
from __future__ import annotations

import os
import random
import re
from dataclasses import dataclass, field
from importlib import resources

from ..memory import human_bytes, shortfall
from .files import path_problem, read_regular_file
from .tokenizers import CharTokenizer, WordTokenizer, compact_ids, ids_needed
from ..errors import DataError


@dataclass
class Dataset:
    name: str
    tokenizer: object
    train: object        # token ids: an array.array of the smallest type holding the vocabulary
    val: object          # token ids, the same
    lines: list | None = None       # for line datasets: all lines (to judge samples)
    val_lines: list | None = None   # held-out lines
    train_lines: list | None = None
    info: dict = field(default_factory=dict)


def names_text() -> str:
    """The embedded names dataset (32,032 names, one a line)."""
    return resources.files("tinyllm.data").joinpath("names.txt").read_text(encoding="utf-8")


# Memory while a text file is loaded, per byte of it: the bytes read, the decoded text (1 byte a
# character for ASCII/Latin-1, 2-4 otherwise), a normalised copy and the token ids (1-2 bytes).
LOAD_BYTES_PER_BYTE = 4
# read one example a line, a file takes far more: a Python string per line and an int per token while
# the streams are built (26 bytes a byte measured on names.txt repeated to 16 MB)
LINES_BYTES_PER_BYTE = 32
_UTF16_BOMS = {b"\xff\xfe\x00\x00": "UTF-32", b"\x00\x00\xfe\xff": "UTF-32", b"\xff\xfe": "UTF-16",
               b"\xfe\xff": "UTF-16"}


def _wide_encoding(raw: bytes) -> str | None:
    """'UTF-16' / 'UTF-32' when raw looks like that (a byte-order mark, or ASCII text in 2-byte units:
    NUL bytes at every other position), else None."""
    for bom, name in _UTF16_BOMS.items():  # UTF-32 marks first: they start like UTF-16's
        if raw.startswith(bom):
            return name
    head = raw[:4096]
    even, odd = head[0::2], head[1::2]
    if len(head) >= 8 and max(even.count(0) / len(even), odd.count(0) / max(1, len(odd))) > 0.4 \
            and min(even.count(0), odd.count(0)) <= len(head) // 50:
        return "UTF-16"
    return None


def clean_text(text: str) -> tuple:
    """(text without a leading byte-order mark, with \\r\\n and \\r line ends made \\n; notes on
    what was changed) -- a BOM or a \\r would otherwise become tokens of their own."""
    notes = []
    if text.startswith("\ufeff"):
        text = text[1:]
        notes.append("byte-order mark removed")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        notes.append("\\r\\n line ends read as \\n")
    return text, notes


def read_text_file(path: str, raw_text: bool = False, info: dict | None = None) -> str:
    """Read a UTF-8 file, turning every way it can fail into one clear DataError.

    Only regular files are read (a FIFO or /dev/zero is refused before it is
    opened), and only when loading them fits in the available memory. Unless
    raw_text, a byte-order mark is removed and line ends are normalised to \\n;
    what was changed is added to info["cleaned"].
    """
    problem = path_problem(path)
    shown = repr(path) if os.path.isabs(path) else f"{path!r} ({os.path.abspath(path)})"
    if problem:
        raise DataError(f"data file {shown} {problem}; give --data the path of a UTF-8 text file")
    size = os.path.getsize(path)
    short = shortfall(LOAD_BYTES_PER_BYTE * size)
    if short:
        raise DataError(f"data file {path!r} is {human_bytes(size)}; loading it for training takes {short}; "
                        f"prepare it once, which reads it in pieces (tinyllm prepare {path} --out DIR), and train "
                        f"with --data DIR")
    try:
        raw = read_regular_file(path)
    except ValueError as e:
        raise DataError(f"data file {path!r} {e}; give --data the path of a UTF-8 text file") from None
    except OSError as e:
        raise DataError(f"cannot read data file {path!r}: {e.strerror}; check its permissions") from None
    if not raw:
        raise DataError(f"data file {path!r} is empty; give a file with some text in it")
    if not raw.strip():
        raise DataError(f"data file {path!r} has no text: its {len(raw):,} bytes are spaces and blank lines "
                        f"(no non-blank line); give a file with some text in it")
    wide = _wide_encoding(raw)
    if wide:
        raise DataError(f"data file {path!r} is {wide} text, not UTF-8; convert it: "
                        f"iconv -f {wide} -t UTF-8 {path} > {os.path.splitext(path)[0]}-utf8.txt")
    if b"\x00" in raw:
        raise DataError(f"data file {path!r} looks binary (it contains NUL bytes); give a UTF-8 text file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"data file {path!r} is not valid UTF-8 (bad byte at offset {e.start}); "
                        f"convert it, e.g. iconv -t utf-8") from None
    del raw
    if raw_text:
        return text
    text, notes = clean_text(text)
    if info is not None and notes:
        info["cleaned"] = notes
    return text


def _split_lines(lines: list, seed: int, frac: float = 0.9):
    order = list(range(len(lines)))
    random.Random(seed).shuffle(order)
    n = int(round(frac * len(lines)))
    return [lines[i] for i in order[:n]], [lines[i] for i in order[n:]]


def _stream(tok, lines: list) -> list:
    out = [tok.bos_id]
    for line in lines:
        out.extend(tok.encode(line))
        out.append(tok.bos_id)
    return out


def line_dataset(name: str, lines: list, seed: int = 0, word: bool = False, make_tokenizer=None) -> Dataset:
    """make_tokenizer: (training lines, lines=True) -> tokenizer with a bos token (e.g. a BPE trained on them);
    None: characters (words if word=True) of all lines."""
    lines = [l for l in (s.strip() for s in lines) if l]
    if len(lines) < 2:
        raise DataError(f"dataset {name!r} has {len(lines)} non-blank line{'' if len(lines) == 1 else 's'}; "
                        f"it needs 2 at least, for training and validation")
    tr, va = _split_lines(lines, seed)
    if make_tokenizer is not None:
        tok = make_tokenizer(tr, True)
    else:
        text = "\n".join(lines)
        tok = WordTokenizer.from_text(text) if word else CharTokenizer.from_text(text, bos=True)
    V = ids_needed(tok)  # the id array's type holds the largest id
    return Dataset(name, tok, compact_ids(_stream(tok, tr), V), compact_ids(_stream(tok, va), V), lines=lines,
                   train_lines=tr, val_lines=va)


def text_dataset(name: str, text: str, make_tokenizer=None) -> Dataset:
    """A long text: character tokens, the first 90% for training, the rest for validation.

    make_tokenizer: ([training text], lines=False) -> tokenizer; the split is then at 90% of the
    characters, and info["val_chars"] counts the validation text (for bits per character)."""
    if make_tokenizer is not None:
        n = int(0.9 * len(text))
        tok = make_tokenizer([text[:n]], False)
        V = ids_needed(tok)
        return Dataset(name, tok, compact_ids(tok.encode(text[:n]), V), compact_ids(tok.encode(text[n:]), V),
                       info={"val_chars": len(text) - n})
    tok = CharTokenizer.from_text(text)
    n = int(0.9 * len(text))  # one token a character
    return Dataset(name, tok, tok.encode_array(text, 0, n), tok.encode_array(text, n))


def names_dataset(seed: int = 0, make_tokenizer=None) -> Dataset:
    return line_dataset("names", names_text().splitlines(), seed, make_tokenizer=make_tokenizer)


_ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
OPS_WORDS = {"plus": lambda a, b: a + b, "minus": lambda a, b: a - b, "times": lambda a, b: a * b}


def number_words(n: int) -> str:
    """0..99 in words: 42 -> 'forty two'."""
    if not 0 <= n <= 99:
        raise ValueError(f"number_words covers 0..99, got {n}")
    if n < 20:
        return _ONES[n]
    t, o = divmod(n, 10)
    return _TENS[t - 2] + ("" if o == 0 else " " + _ONES[o])


def arithmetic_problems(max_operand: int = 99) -> list:
    """Every 'a op b equals c' with operands and result in 0..99, in words."""
    out = []
    for op, f in OPS_WORDS.items():
        for a in range(max_operand + 1):
            for b in range(max_operand + 1):
                c = f(a, b)
                if 0 <= c <= 99:
                    out.append(f"{number_words(a)} {op} {number_words(b)} equals {number_words(c)}")
    return out


def arithmetic_dataset(seed: int = 0, make_tokenizer=None) -> Dataset:
    """Problems split 90/10 by seed: val problems never appear in training."""
    return line_dataset("arithmetic", arithmetic_problems(), seed, word=True, make_tokenizer=make_tokenizer)


DATASETS = ("names", "arithmetic")


# what str.splitlines splits at
_LONG_LINE = re.compile("[^\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]{41,}")


def _looks_like_lines(text: str) -> bool:
    """Short lines (at most 40 characters, at least 50 of them with text) -> one example a line.
    The long-line search runs first: it needs no list of lines (a big text has millions)."""
    if _LONG_LINE.search(text):
        return False
    return sum(1 for l in text.splitlines() if l.strip()) >= 50


def load_dataset(spec: str = "names", seed: int = 0, lines: bool | None = None, tokenizer=None,
                 raw_text: bool = False) -> Dataset:
    """"names", "arithmetic", or a path to a UTF-8 text file.

    A file is treated line by line (like names) when lines=True, as one long
    text when lines=False, and by guess when None: short lines -> lines.
    tokenizer: None (characters; words for arithmetic) or a maker
    (training texts, lines: bool) -> tokenizer, e.g. a byte-level BPE.
    raw_text keeps a file's byte-order mark and \\r\\n line ends (see read_text_file).
    """
    if spec == "names":
        return names_dataset(seed, tokenizer)
    if spec == "arithmetic":
        return arithmetic_dataset(seed, tokenizer)
    info: dict = {}
    text = read_text_file(spec, raw_text, info)
    if lines is None:
        lines = _looks_like_lines(text)
    short = shortfall(LINES_BYTES_PER_BYTE * len(text)) if lines else None
    if short:
        raise DataError(f"data file {spec!r} read one example a line takes {short}; pass --no-lines to read it "
                        f"as one text (a few bytes a character), or prepare it once (tinyllm prepare {spec} "
                        f"--documents line --out DIR) and train with --data DIR")
    name = os.path.basename(spec)
    if lines:
        ds = line_dataset(name, text.splitlines(), seed, make_tokenizer=tokenizer)
    else:
        ds = text_dataset(name, text, tokenizer)
    ds.info.update(info)
    return ds
