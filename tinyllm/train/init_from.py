"""Where a run's tokenizer and first weights come from, besides the defaults.

    --tokenizer bpe --vocab-size N   a byte-level BPE trained on the training split (tinyllm.data.bpe)
    --init-from DIR                  GPT-2's weights and tokenizer from a local Hugging Face directory
                                     (read by tinyllm/gpt2/; this module is the trainer's side of it)

The Trainer asks data_tokenizer(cfg) for the tokenizer maker it passes to
load_dataset (None: the data's own character / word tokenizer), and
pretrained_model(cfg, backend) for the first weights of a fresh --init-from run.
A resumed BPE or --init-from run uses the tokenizer stored in its checkpoint: the
model was trained with it, whatever the data file or the directory holds now
(a character tokenizer is the data's characters, and the checkpoint check
compares them).
"""
from __future__ import annotations

import hashlib
import json

from ..data import TokenizerError, tokenizer_from_dict
from ..data.bpe import DEFAULT_VOCAB, train_bpe
from ..errors import CheckpointError, ConfigError
from ..gpt2 import load_pretrained_model, load_pretrained_tokenizer
from .checkpoint import read_meta


def data_tokenizer(cfg):
    """None, or (texts of the training split, lines: bool) -> tokenizer, for load_dataset. Settings that ask
    for another tokenizer than a resumed run's make that one, and the checkpoint check refuses it."""
    if cfg.init_from and "tokenizer" in getattr(cfg, "given", ()):
        raise ConfigError(f"--init-from brings its own tokenizer (the one in {cfg.init_from}), so --tokenizer "
                          f"{cfg.tokenizer} would be ignored; drop --tokenizer")
    stored = _stored_bpe(cfg) if cfg.resume else None
    if stored is not None and (cfg.init_from or cfg.tokenizer == "bpe" and cfg.vocab_size in (None, stored.vocab_size)):
        return _keyed(lambda texts, lines: stored.with_bos(lines), _digest(stored))
    if cfg.init_from:
        tok = load_pretrained_tokenizer(cfg.init_from)
        return _keyed(lambda texts, lines: tok.with_bos(lines), _digest(tok))
    if cfg.tokenizer == "bpe":
        n = cfg.vocab_size or DEFAULT_VOCAB
        return _keyed(lambda texts, lines: train_bpe(texts, n, bos=lines), f"bpe:{n}")
    return None


def _keyed(maker, key: str):
    """maker with `key`: what the cached dataset is keyed by (data/cached.py), the same for the same tokenizer."""
    maker.key = key
    return maker


def _digest(tok) -> str:
    return "tokenizer:" + hashlib.sha256(json.dumps(tok.to_dict(), sort_keys=True).encode()).hexdigest()


def _stored_bpe(cfg):
    """The BPE tokenizer in the checkpoint a run resumes; None when it has none (a character run) or it cannot
    be read: then the tokenizer is made as for a new run, and the checkpoint check says what is wrong."""
    try:
        saved = read_meta(cfg.out).get("tokenizer")
    except CheckpointError:
        return None
    if not isinstance(saved, dict) or saved.get("type") != "bpe":
        return None
    try:
        return tokenizer_from_dict(saved)
    except TokenizerError:
        return None


def pretrained_model(cfg, backend):
    """The GPT of cfg.init_from on backend (--block-size crops its context, --dropout overrides), held against
    the memory training it takes before anything is allocated."""
    return load_pretrained_model(cfg.init_from, backend, cfg.block_size, cfg.dropout, training=True)
