"""Batch encoding for `tinyllm prepare`: documents in, one id sequence per document out.

A BPE batch goes through tiktoken on one thread a core when it is installed and
encodes as the tokenizer does (tiktoken_bpe.py), else through the tokenizers
library's encode_batch, which spreads it over every core; a long document is cut first into pieces at a newline followed by
a non-space character, where GPT-2's pre-tokenizer splits anyway, so the pieces
encode to exactly the ids of the whole and still spread over the cores. Characters
are one str.translate per document (encode_array): no Python int per token.

A document too large to hold (sources.LongDocument) is encoded as it is read (encode_stream): each piece up
to its last point where the tokenizer splits anyway (an encoder's last_cut), the rest held for the next.
"""
from __future__ import annotations

import os
import re
import threading
from array import array

from ..errors import DataError, TokenizerError
from .bpe import EOT
from .tiktoken_bpe import as_tiktoken, splits_like_gpt2

PIECE_CHARS = 1 << 18   # a long document's pieces, for encode_batch to share out
_NEWLINE_BEFORE_TEXT = re.compile(r"\n(?=\S)")


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


def last_cut(text: str, prev: str = ""):
    """Where GPT-2's pre-tokenizer splits anyway: before text's last newline that a non-space character follows
    (the index of that newline; -1 when it is prev, the character before text; None when there is none).
    Such a newline is a token of its own, whatever precedes it: the whitespace in front of it is one token
    (`\\s+(?!\\S)`), the text before that ends at the whitespace. Searched from the end."""
    window = 1 << 12
    while True:
        lo = max(0, len(text) - window)
        m = None
        for m in _NEWLINE_BEFORE_TEXT.finditer(text, lo):
            pass
        if m is not None:
            return m.start()
        if lo == 0:
            return -1 if prev == "\n" and text[:1] and not text[0].isspace() else None
        window *= 8


def encode_stream(encoder, chunks, where: str):
    """(ids, done) for each (text, done) of one document given in pieces: the ids of the whole document
    (no end-of-text), each piece encoded up to encoder.last_cut and the rest held for the next. Where no cut
    comes for a long stretch the text accumulates (correct first); the ids may be empty then."""
    held, prev, done = [], "", None
    for text, done in chunks:
        cut = encoder.last_cut(text, prev) if text else None
        prev = text[-1:] or prev
        if cut is None:
            held.append(text)
            yield (), done
            continue
        buf = "".join(held) + text
        cut += len(buf) - len(text)
        held = [buf[cut:]]
        yield (encoder.encode([buf[:cut]], where)[0] if cut else ()), done
    rest = "".join(held)
    if rest:
        yield encoder.encode([rest], where)[0], done


def joined(seqs: list, eot: int) -> array:
    """Documents' ids as one uint32 stream, end-of-text after each (what a split's shards hold)."""
    flat = array("I")
    for ids in seqs:
        flat.extend(ids if not isinstance(ids, array) or ids.typecode == "I" else array("I", ids))
        flat.append(eot)
    return flat


class CharEncoder:
    batch_chars = 1 << 22

    def __init__(self, tok):
        self.tok = tok

    def encode_documents(self, docs: list, where: str) -> array:
        """One encode_array over the batch's text, then end-of-text after each document's ids (one id a
        character). A call a document built encode_array's table each time: 60% of a paragraph prepare."""
        (ids,) = self.encode(["".join(docs)], where)
        out, pos, eot = array(ids.typecode), 0, array(ids.typecode, [self.tok.bos_id])
        for d in docs:
            out += ids[pos:pos + len(d)]
            out += eot
            pos += len(d)
        return out

    def last_cut(self, text: str, prev: str) -> int:
        return len(text)  # characters encode one by one

    def encode(self, docs: list, where: str) -> list:
        try:
            return [self.tok.encode_array(d) for d in docs]
        except TokenizerError as e:
            raise TokenizerError(f"{where}: {e}; the tokenizer given by --tokenizer-from cannot encode it") from None


class BPEEncoder:
    """tiktoken (as_tiktoken) on threads when it converts the tokenizer and agrees with it on the first batch's
    first SAMPLE_CHARS; else the tokenizers library's encode_batch."""
    batch_chars = 1 << 23
    SAMPLE_CHARS = 1 << 16

    def __init__(self, tok):
        self.tk, self.eot = tok.tk, tok.bos_id
        self.tt = as_tiktoken(self.tk)
        self.cuts = splits_like_gpt2(self.tk)  # another pre-tokenizer (a prefix space, SentencePiece's): no cuts
        self.checked = self.tt is None
        self.threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1

    def last_cut(self, text: str, prev: str):
        return last_cut(text, prev) if self.cuts else None

    @property
    def engine(self) -> str:
        return "tiktoken" if self.tt is not None else "tokenizers"

    def encode_documents(self, docs: list, where: str) -> array:
        """With tiktoken: the documents joined by <|endoftext|> as text, which tiktoken (allowing that special
        token) splits at first, so each document encodes on its own; the joined text is cut into pieces for the
        threads. No Python work per document (it was most of the time for short ones)."""
        if not self.checked:
            self._check_agreement(docs, where)
        if self.tt is None:
            return joined(self.encode(docs, where), self.eot)
        text = EOT.join(docs) + EOT
        flat = array("I")
        for ids in self._tiktoken(pieces(text, max(1 << 16, len(text) // (4 * self.threads))), where):
            flat.extend(ids)
        return flat

    def encode(self, docs: list, where: str) -> list:
        cut = [pieces(d) if self.cuts else [d] for d in docs]
        flat = [p for ps in cut for p in ps]
        if not self.checked:
            self._check_agreement(docs, where)
        encs = self._tiktoken(flat, where) if self.tt is not None else self._tokenizers(flat, where)
        out, i = [], 0
        for ps in cut:
            if len(ps) == 1:
                out.append(encs[i])
            else:
                ids = encs[i][:0]
                for e in encs[i:i + len(ps)]:
                    ids.extend(e)
                out.append(ids)
            i += len(ps)
        return out

    def _check_agreement(self, docs: list, where: str) -> None:
        sample, n = [], 0
        for d in docs:  # both engines get the same strings: any cut will do
            if n >= self.SAMPLE_CHARS:
                break
            sample.append(d[:self.SAMPLE_CHARS - n])  # a whole 16 MB piece: 1 GB of tokenizers' Encodings
            n += len(sample[-1])
        if [list(ids) for ids in self._tiktoken(sample, where)] != self._tokenizers(sample, where):
            self.tt = None
        self.checked = True

    def _tokenizers(self, flat: list, where: str) -> list:
        try:
            return [e.ids for e in self.tk.encode_batch(flat, add_special_tokens=False)]
        except Exception as e:  # the Rust side refuses lone surrogates (from JSON escapes)
            raise _surrogates(where, e) from None

    def _tiktoken(self, flat: list, where: str) -> list:
        """Each thread encodes every n-th piece; tiktoken releases the GIL while it encodes. Special tokens
        written in a text are those tokens, as the tokenizers library makes them."""
        n = max(1, min(self.threads, len(flat)))
        parts = [None] * n

        def run(t):
            mine = parts[t] = []
            try:
                for p in flat[t::n]:
                    p.encode("utf-8")  # raises on lone surrogates, which tiktoken would replace silently
                    ids = array("I")  # from tiktoken's buffer: no Python int per token
                    ids.frombytes(memoryview(self.tt.encode_to_numpy(p, allowed_special="all")).cast("B"))
                    mine.append(ids)
            except UnicodeEncodeError as e:
                parts[t] = e

        threads = [threading.Thread(target=run, args=(t,), daemon=True) for t in range(1, n)]  # SIGTERM: no wait
        for th in threads:
            th.start()
        run(0)
        for th in threads:
            th.join()
        for p in parts:
            if isinstance(p, BaseException):
                raise _surrogates(where, p) from None
        out = [None] * len(flat)
        for t in range(n):
            out[t::n] = parts[t]
        return out


def _surrogates(where: str, e) -> DataError:
    return DataError(f"{where} has text the tokenizer cannot encode ({str(e)[:80]}); give UTF-8 text "
                     f"without lone surrogate escapes")


def make_encoder(tok):
    return BPEEncoder(tok) if getattr(tok, "kind", None) == "bpe" else CharEncoder(tok)
