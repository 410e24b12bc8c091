"""Datasets: the embedded names, any UTF-8 text file, generated arithmetic in words.

Every dataset becomes a train and a val token stream (90/10, deterministic by
seed); line datasets join their lines with <bos> so a model learns where a
line starts and ends.
"""
from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from importlib import resources

from .tokenizers import CharTokenizer, WordTokenizer


class DataError(ValueError):
    """Input data that cannot be used; the message names the problem and the fix."""


@dataclass
class Dataset:
    name: str
    tokenizer: object
    train: list          # token ids
    val: list            # token ids
    lines: list | None = None       # for line datasets: all lines (to judge samples)
    val_lines: list | None = None   # held-out lines
    train_lines: list | None = None
    info: dict = field(default_factory=dict)


def names_text() -> str:
    """The embedded names dataset (32,032 names, one a line)."""
    return resources.files("tinyllm.data").joinpath("names.txt").read_text(encoding="utf-8")


def read_text_file(path: str) -> str:
    """Read a UTF-8 file, turning every way it can fail into one clear DataError."""
    if not os.path.exists(path):
        raise DataError(f"data file {path!r} does not exist; check the path given to --data")
    if os.path.isdir(path):
        raise DataError(f"data path {path!r} is a directory; pass a UTF-8 text file")
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise DataError(f"cannot read data file {path!r}: {e.strerror}; check its permissions") from None
    if not raw.strip():
        raise DataError(f"data file {path!r} is empty; give a file with some text in it")
    if b"\x00" in raw:
        raise DataError(f"data file {path!r} looks binary (it contains NUL bytes); give a UTF-8 text file")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"data file {path!r} is not valid UTF-8 (bad byte at offset {e.start}); "
                        f"convert it, e.g. iconv -t utf-8") from None


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
        raise DataError(f"dataset {name!r} has fewer than 2 non-empty lines; it needs lines for training and validation")
    tr, va = _split_lines(lines, seed)
    if make_tokenizer is not None:
        tok = make_tokenizer(tr, True)
    else:
        text = "\n".join(lines)
        tok = WordTokenizer.from_text(text) if word else CharTokenizer.from_text(text, bos=True)
    return Dataset(name, tok, _stream(tok, tr), _stream(tok, va), lines=lines, train_lines=tr, val_lines=va)


def text_dataset(name: str, text: str, make_tokenizer=None) -> Dataset:
    """A long text: character tokens, the first 90% for training, the rest for validation.

    make_tokenizer: ([training text], lines=False) -> tokenizer; the split is then at 90% of the
    characters, and info["val_chars"] counts the validation text (for bits per character)."""
    if make_tokenizer is not None:
        n = int(0.9 * len(text))
        tok = make_tokenizer([text[:n]], False)
        return Dataset(name, tok, tok.encode(text[:n]), tok.encode(text[n:]), info={"val_chars": len(text) - n})
    tok = CharTokenizer.from_text(text)
    ids = tok.encode(text)
    n = int(0.9 * len(ids))
    return Dataset(name, tok, ids[:n], ids[n:])


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


def load_dataset(spec: str = "names", seed: int = 0, lines: bool | None = None, tokenizer=None) -> Dataset:
    """"names", "arithmetic", or a path to a UTF-8 text file.

    A file is treated line by line (like names) when lines=True, as one long
    text when lines=False, and by guess when None: short lines -> lines.
    tokenizer: None (characters; words for arithmetic) or a maker
    (training texts, lines: bool) -> tokenizer, e.g. a byte-level BPE.
    """
    if spec == "names":
        return names_dataset(seed, tokenizer)
    if spec == "arithmetic":
        return arithmetic_dataset(seed, tokenizer)
    text = read_text_file(spec)
    if lines is None:
        ls = [l for l in text.splitlines() if l.strip()]
        lines = bool(ls) and max(len(l) for l in ls) <= 40 and len(ls) >= 50
    name = os.path.basename(spec)
    if lines:
        return line_dataset(name, text.splitlines(), seed, make_tokenizer=tokenizer)
    return text_dataset(name, text, tokenizer)
