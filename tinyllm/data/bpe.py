"""Byte-level BPE, GPT-2's tokenizer scheme, through Hugging Face's `tokenizers` library.

    tok = train_bpe(["some training text ..."], vocab_size=512)   # 256 bytes + <|endoftext|> + 255 merges

GPT-2's own, read from a Hugging Face directory, comes through
tinyllm.gpt2.load_hf_tokenizer (tinyllm/gpt2/tokenizer_files.py).

`tokenizers` is an optional extra (pip install 'tinyllm[bpe]'), not a core
dependency: it is compiled code that brings huggingface-hub and its HTTP stack
along, and the default character tokenizer needs none of it. It is imported
only when a BPE tokenizer is made or loaded; without it, one line says what to
install.

Every byte has a token, so any text encodes. <|endoftext|> (GPT-2's document
separator) is the one special token; in line datasets it marks where a line
starts and ends, as <bos> does for the character tokenizer. A tokenizer is
stored with the checkpoint as its tokenizer.json text, and exports as that file.
"""
from __future__ import annotations

from ..errors import TokenizerError

EOT = "<|endoftext|>"
MIN_VOCAB = 257          # the 256 byte tokens + <|endoftext|>
MAX_VOCAB = 1_000_000    # far beyond any GPT (GPT-2: 50,257); catches a typo before training starts
DEFAULT_VOCAB = 512
INSTALL = "pip install 'tinyllm[bpe]' (or: pip install tokenizers)"


def tokenizers_lib():
    """Hugging Face's tokenizers module, or one TokenizerError saying what to install."""
    try:
        import tokenizers
    except ImportError:
        raise TokenizerError(f"byte-level BPE needs Hugging Face's tokenizers library, which is not installed: "
                             f"{INSTALL}") from None
    return tokenizers


def check_vocab_size(n) -> int:
    if not isinstance(n, int) or isinstance(n, bool):
        raise TokenizerError(f"--vocab-size must be an integer, got {n!r}")
    if n < MIN_VOCAB:
        raise TokenizerError(f"--vocab-size {n} is too small: byte-level BPE needs at least {MIN_VOCAB} tokens "
                             f"(256 bytes + {EOT}); use --vocab-size {MIN_VOCAB} or more (e.g. {DEFAULT_VOCAB})")
    if n > MAX_VOCAB:
        raise TokenizerError(f"--vocab-size {n} is too large (at most {MAX_VOCAB:,}; GPT-2 has 50,257); "
                             f"use a smaller --vocab-size")
    return n


def _not_utf8(text: str) -> str:
    """What of text cannot be UTF-8: the bytes a command line could not decode (Python keeps them as
    surrogate escapes, U+DC80..U+DCFF), else the lone surrogates."""
    bad = [c for c in text if "\ud800" <= c <= "\udfff"]
    raw = bytes(ord(c) - 0xDC00 for c in bad if "\udc80" <= c <= "\udcff")
    if len(raw) == len(bad):
        return f"the bytes {str(raw)[2:-1]}"
    return f"the lone surrogates {''.join(bad)!r}"


class BPETokenizer:
    """A `tokenizers.Tokenizer` with tinyllm's tokenizer interface (encode, decode, vocab_size, bos_id, to_dict).

    bos=True (line datasets): <|endoftext|> is the <bos> token that starts and ends each line.
    """

    kind = "bpe"

    def __init__(self, tk, bos: bool = False):
        self.tk = tk
        self.bos = bool(bos)
        self.eot_id = tk.token_to_id(EOT)
        if self.bos and self.eot_id is None:
            raise TokenizerError(f"this tokenizer has no {EOT} token to mark where lines start and end; "
                                 f"train on the data as one text (--no-lines)")

    def with_bos(self, bos: bool) -> "BPETokenizer":
        return self if bos == self.bos else BPETokenizer(self.tk, bos)

    @property
    def vocab_size(self) -> int:
        return self.tk.get_vocab_size(with_added_tokens=True)

    @property
    def bos_id(self) -> int | None:
        return self.eot_id if self.bos else None

    def encode(self, text: str) -> list:
        try:
            return self.tk.encode(text, add_special_tokens=False).ids
        except TypeError:  # the Rust side takes only text that is valid UTF-8
            if isinstance(text, str):
                raise TokenizerError(f"text that is not UTF-8: {_not_utf8(text)}; give UTF-8 text") from None
            raise

    def decode(self, ids) -> str:
        ids = [int(i) for i in ids if not (self.bos and i == self.eot_id)]
        return self.tk.decode(ids, skip_special_tokens=False)

    def to_json(self) -> str:
        """The tokenizer.json text (what transformers' PreTrainedTokenizerFast and `tokenizers` read)."""
        return self.tk.to_str()

    def to_dict(self) -> dict:
        return {"type": "bpe", "bos": self.bos, "vocab_size": self.vocab_size, "json": self.to_json()}

    @classmethod
    def from_dict(cls, d: dict) -> "BPETokenizer":
        if not isinstance(d.get("json"), str):
            raise TokenizerError("bpe tokenizer description has no tokenizer.json text")
        tk = parse_tokenizer_json(tokenizers_lib(), d["json"], "the stored tokenizer")
        return cls(tk, bos=bool(d.get("bos", False)))

    def __eq__(self, other) -> bool:
        return isinstance(other, BPETokenizer) and other.to_dict() == self.to_dict()


def parse_tokenizer_json(lib, text: str, where: str):
    try:
        return lib.Tokenizer.from_str(text)
    except Exception as e:  # the Rust parser raises plain Exception
        raise TokenizerError(f"{where} does not parse as a tokenizers tokenizer.json ({str(e)[:120]})") from None


def train_bpe(texts: list, vocab_size: int = DEFAULT_VOCAB, bos: bool = False) -> BPETokenizer:
    """Train a byte-level BPE (GPT-2's pre-tokenizer, <|endoftext|> special) on texts (merges never cross items).

    Exactly vocab_size tokens, or a TokenizerError when the text runs out of pairs to merge first.
    """
    check_vocab_size(vocab_size)
    lib = tokenizers_lib()
    from tokenizers import decoders, models, pre_tokenizers, trainers

    tk = lib.Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOT], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tk.train_from_iterator(texts, trainer=trainer)
    got = tk.get_vocab_size(with_added_tokens=True)
    if got < vocab_size:
        raise TokenizerError(f"--vocab-size {vocab_size} is too large for this text: byte-level BPE ran out of "
                             f"pairs to merge at {got} tokens; use --vocab-size {got} or less")
    return BPETokenizer(tk, bos=bos)
