"""The tokenizer `tinyllm prepare` encodes with; it always has an end-of-text id (its bos_id).

    char                   the characters of every source, plus <bos> (id 0) as end-of-text
    bpe --vocab-size N     a byte-level BPE trained on the first --sample-bytes of training documents
    --tokenizer-from DIR   a tinyllm run's tokenizer (its checkpoint) or a Hugging Face directory's
"""
from __future__ import annotations

import os

from ..errors import TokenizerError
from .bpe import train_bpe
from .sources import LongDocument, documents, is_val
from .tokenizers import CharTokenizer, tokenizer_from_dict


def make_tokenizer(sources: list, mode: str, opts, bar):
    """bar(desc) -> a progress bar over the sources' bytes (for the passes that read them)."""
    if opts.tokenizer_from:
        return tokenizer_from(opts.tokenizer_from)
    if opts.tokenizer == "bpe":
        return _sampled_bpe(sources, mode, opts, bar)
    if opts.tokenizer != "char":
        raise TokenizerError(f"--tokenizer must be char or bpe, got {opts.tokenizer!r}")
    chars: set = set()
    with bar("characters") as b:
        for src in sources:
            before = b.n
            for doc, done in documents(src, mode, opts.field, opts.column):
                for text, done in doc.chunks() if isinstance(doc, LongDocument) else [(doc, done)]:
                    chars.update(text)
                    if done is not None:
                        b.update(before + done - b.n)
            b.update(before + src.size - b.n)
            src.documents = 0  # counted again by the encoding pass
    return CharTokenizer(sorted(chars), bos=True)


def _sampled_bpe(sources: list, mode: str, opts, bar):
    sample, size = [], 0
    for src in sources:
        for doc, _ in documents(src, mode, opts.field, opts.column):
            if not is_val(doc, opts.seed, opts.val_fraction):  # train on training documents only
                sample.append(doc.head(opts.sample_bytes - size) if isinstance(doc, LongDocument) else doc)
                size += len(sample[-1])
            if size >= opts.sample_bytes:
                break
        src.documents = 0
        if size >= opts.sample_bytes:
            break
    if not sample:
        raise TokenizerError("no training document to train a BPE on; give more documents")
    return train_bpe(sample, opts.vocab_size, bos=True)


def tokenizer_from(path: str):
    """The tokenizer of a tinyllm run directory (checkpoint.json) or of a Hugging Face directory."""
    from ..errors import CheckpointError
    from ..gpt2 import load_hf_tokenizer
    from ..train.checkpoint import has_checkpoint, read_meta

    if not os.path.isdir(path):
        raise TokenizerError(f"--tokenizer-from {path!r} is not a directory; give a tinyllm run directory or a "
                             f"Hugging Face model directory")
    if has_checkpoint(path):
        try:
            tok = tokenizer_from_dict(read_meta(path).get("tokenizer"))
        except CheckpointError as e:
            raise TokenizerError(f"--tokenizer-from {path!r}: {e}") from None
        if tok.kind == "bpe":
            return tok.with_bos(True)
        if tok.kind == "char" and tok.bos:
            return tok
        raise TokenizerError(f"the run in {path!r} has a {tok.kind} tokenizer without an end-of-text token to "
                             f"separate documents; prepare with --tokenizer char or bpe instead")
    return load_hf_tokenizer(path, bos=True)  # TokenizerError when it has no <|endoftext|>
