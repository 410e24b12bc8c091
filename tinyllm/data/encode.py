"""Batch encoding for `tinyllm prepare`: documents in, one id sequence per document out.

A BPE batch goes through the tokenizers library's encode_batch, which spreads it
over every core; a long document is cut first into pieces at a newline followed by
a non-space character, where GPT-2's pre-tokenizer splits anyway, so the pieces
encode to exactly the ids of the whole and still spread over the cores. Characters
are one str.translate per document (encode_array): no Python int per token.
"""
from __future__ import annotations

from ..errors import DataError, TokenizerError

PIECE_CHARS = 1 << 18   # a long document's pieces, for encode_batch to share out


def pieces(doc: str, size: int = PIECE_CHARS) -> list:
    """doc cut about every `size` characters at a lone newline between two non-space characters: GPT-2's
    pre-tokenizer makes that newline a token of its own, so the pieces encode as the whole does."""
    out, start = [], 0
    while len(doc) - start > size:
        cut = doc.find("\n", start + size)
        while cut != -1 and cut + 1 < len(doc) and (doc[cut - 1].isspace() or doc[cut + 1].isspace()):
            cut = doc.find("\n", cut + 1)
        if cut == -1 or cut + 1 >= len(doc):
            break
        out.append(doc[start:cut + 1])
        start = cut + 1
    out.append(doc[start:])
    return out


class CharEncoder:
    batch_chars = 1 << 22

    def __init__(self, tok):
        self.tok = tok

    def encode(self, docs: list, where: str) -> list:
        try:
            return [self.tok.encode_array(d) for d in docs]
        except TokenizerError as e:
            raise TokenizerError(f"{where}: {e}; the tokenizer given by --tokenizer-from cannot encode it") from None


class BPEEncoder:
    batch_chars = 1 << 23

    def __init__(self, tok):
        self.tk = tok.tk

    def encode(self, docs: list, where: str) -> list:
        cut = [pieces(d) for d in docs]
        flat = [p for ps in cut for p in ps]
        try:
            encs = self.tk.encode_batch(flat, add_special_tokens=False)
        except Exception as e:  # the Rust side refuses lone surrogates (from JSON escapes)
            raise DataError(f"{where} has text the tokenizer cannot encode ({str(e)[:80]}); give UTF-8 text "
                            f"without lone surrogate escapes") from None
        out, i = [], 0
        for ps in cut:
            ids = []
            for e in encs[i:i + len(ps)]:
                ids.extend(e.ids)
            out.append(ids)
            i += len(ps)
        return out


def make_encoder(tok):
    return BPEEncoder(tok) if getattr(tok, "kind", None) == "bpe" else CharEncoder(tok)
