"""Character and word tokenizers; both serialise to JSON and round-trip exactly.

Token streams of datasets are kept as `array.array`s of the smallest unsigned
integer type that holds the vocabulary (1 byte a token for up to 256 tokens,
2 for up to 65,536), not as lists of Python ints (36 bytes a token).
"""
from __future__ import annotations

import sys
from array import array
from ..errors import TokenizerError

BOS = "<bos>"  # marks both the start and the end of a line in line datasets
_CHUNK = 1 << 20  # characters encoded at a time by CharTokenizer.encode_array


def id_typecode(vocab_size: int) -> str:
    """The array typecode of the smallest unsigned integer holding ids 0..vocab_size-1."""
    for code in ("B", "H", "I", "L", "Q"):
        if vocab_size <= 1 << (8 * array(code).itemsize):
            return code
    raise TokenizerError(f"a vocabulary of {vocab_size} tokens is too large")


def compact_ids(ids, vocab_size: int) -> array:
    """Token ids (any iterable of ints) as an array of the smallest type holding the vocabulary."""
    return array(id_typecode(vocab_size), ids)


class _Table(dict):
    """str.translate table char -> chr(id); a character outside the vocabulary raises."""

    def __missing__(self, code):
        raise TokenizerError(f"characters not in the vocabulary: {chr(code)!r}")


class CharTokenizer:
    """One token per character. With bos=True, token 0 is <bos> (start/end of a line)."""

    kind = "char"

    def __init__(self, chars, bos: bool = False):
        self.bos = bos
        self.itos = ([BOS] if bos else []) + list(chars)
        if len(set(self.itos)) != len(self.itos):
            raise TokenizerError("tokenizer characters must be distinct")
        self.stoi = {c: i for i, c in enumerate(self.itos)}

    @classmethod
    def from_text(cls, text: str, bos: bool = False) -> "CharTokenizer":
        return cls(sorted(set(text) - {"\n"} if bos else set(text)), bos=bos)

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    @property
    def bos_id(self) -> int | None:
        return 0 if self.bos else None

    def encode(self, text: str) -> list:
        try:
            return [self.stoi[c] for c in text]
        except KeyError:
            bad = sorted({c for c in text if c not in self.stoi})
            raise TokenizerError(f"characters not in the vocabulary: {''.join(bad)!r}") from None

    def encode_array(self, text: str, start: int = 0, stop: int | None = None) -> array:
        """text[start:stop] as a compact id array, without a Python int per character: each chunk is
        translated to the characters chr(id) and encoded in a codec whose code units are the ids."""
        code = id_typecode(self.vocab_size)
        size = array(code).itemsize
        codec = {1: "latin-1", 2: "utf-16", 4: "utf-32"}.get(size)
        out = array(code)
        if codec is None:  # 8-byte ids: a vocabulary this large does not occur for characters
            out.extend(self.encode(text[start:stop]))
            return out
        if size > 1:
            codec += "-le" if sys.byteorder == "little" else "-be"
        table = _Table({ord(c): chr(i) for i, c in enumerate(self.itos) if len(c) == 1})
        stop = len(text) if stop is None else stop
        for i in range(start, stop, _CHUNK):
            out.frombytes(text[i:min(i + _CHUNK, stop)].translate(table).encode(codec, "surrogatepass"))
        return out

    def decode(self, ids) -> str:
        return "".join(self.itos[i] for i in ids if not (self.bos and i == 0))

    def to_dict(self) -> dict:
        return {"type": "char", "bos": self.bos, "tokens": self.itos[1:] if self.bos else self.itos}

    def __eq__(self, other) -> bool:
        return isinstance(other, CharTokenizer) and other.to_dict() == self.to_dict()


class WordTokenizer:
    """One token per whitespace-separated word; token 0 is <bos> (start/end of a line)."""

    kind = "word"

    def __init__(self, words):
        self.bos = True
        self.itos = [BOS] + list(words)
        if len(set(self.itos)) != len(self.itos):
            raise TokenizerError("tokenizer words must be distinct")
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    @classmethod
    def from_text(cls, text: str) -> "WordTokenizer":
        return cls(sorted(set(text.split())))

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    @property
    def bos_id(self) -> int:
        return 0

    def encode(self, text: str) -> list:
        try:
            return [self.stoi[w] for w in text.split()]
        except KeyError:
            bad = sorted({w for w in text.split() if w not in self.stoi})
            raise TokenizerError(f"words not in the vocabulary: {', '.join(bad)}") from None

    def decode(self, ids) -> str:
        return " ".join(self.itos[i] for i in ids if i != 0)

    def to_dict(self) -> dict:
        return {"type": "word", "tokens": self.itos[1:]}

    def __eq__(self, other) -> bool:
        return isinstance(other, WordTokenizer) and other.to_dict() == self.to_dict()


def ids_needed(tokenizer) -> int:
    """One more than the largest id the tokenizer gives: the smallest model vocabulary it fits. A
    Hugging Face tokenizer's ids may have gaps (a hand-edited tokenizer.json), so they are read, not counted."""
    tk = getattr(tokenizer, "tk", None)
    if tk is not None:
        return max(tk.get_vocab(with_added_tokens=True).values(), default=-1) + 1
    return tokenizer.vocab_size


def vocab_misfit(tokenizer, vocab_size: int) -> str | None:
    """The one rule for a tokenizer and a model: every id it gives is below the model's vocab_size; a larger
    vocabulary is fine (GPT-2 pads its 50,257 tokens to 50,304). None when it fits, else what does not fit:
    'has N tokens, more than the model's vocab_size V' (callers say whose)."""
    need = ids_needed(tokenizer)
    if need <= vocab_size:
        return None
    if need == tokenizer.vocab_size:
        return f"has {need} tokens, more than the model's vocab_size {vocab_size}"
    return f"has token id {need - 1}, outside the model's vocab_size {vocab_size} (ids 0..{vocab_size - 1})"


def tokenizer_from_dict(d: dict):
    if isinstance(d, dict) and d.get("type") == "bpe":
        from .bpe import BPETokenizer

        return BPETokenizer.from_dict(d)
    if not isinstance(d, dict) or d.get("type") not in ("char", "word") or not isinstance(d.get("tokens"), list):
        raise TokenizerError("tokenizer description is malformed (expected type 'char' or 'word' and a token list)")
    if not all(isinstance(t, str) for t in d["tokens"]):
        raise TokenizerError("tokenizer tokens must be strings")
    if d["type"] == "char":
        return CharTokenizer(d["tokens"], bos=bool(d.get("bos", False)))
    return WordTokenizer(d["tokens"])
