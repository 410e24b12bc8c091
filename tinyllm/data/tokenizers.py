"""Character and word tokenizers; both serialise to JSON and round-trip exactly."""
from __future__ import annotations

BOS = "<bos>"  # marks both the start and the end of a line in line datasets


class TokenizerError(ValueError):
    """Text the tokenizer cannot encode, or a tokenizer file that does not parse."""


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
