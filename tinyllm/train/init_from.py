"""Where a run's tokenizer and first weights come from, besides the defaults.

    --tokenizer bpe --vocab-size N   a byte-level BPE trained on the training split (tinyllm.data.bpe)
    --init-from DIR                  GPT-2's weights and tokenizer from a local Hugging Face directory

The Trainer asks data_tokenizer(cfg) for the tokenizer maker it passes to
load_dataset (None: the data's own character / word tokenizer), and
pretrained_model(cfg, backend) for the first weights of a fresh --init-from run.
A resumed run rebuilds the same tokenizer (BPE training is deterministic; an
--init-from directory is read again) and the checkpoint check confirms it.
"""
from __future__ import annotations

from ..data.bpe import DEFAULT_VOCAB, train_bpe


def data_tokenizer(cfg):
    """None, or (texts of the training split, lines: bool) -> tokenizer, for load_dataset."""
    if cfg.init_from:
        from ..hf_dir import load_pretrained_tokenizer

        tok = load_pretrained_tokenizer(cfg.init_from)
        return lambda texts, lines: tok.with_bos(lines)
    if cfg.tokenizer == "bpe":
        n = cfg.vocab_size or DEFAULT_VOCAB
        return lambda texts, lines: train_bpe(texts, n, bos=lines)
    return None


def pretrained_model(cfg, backend):
    """The GPT of cfg.init_from on backend (--block-size crops its context, --dropout overrides)."""
    from ..hf_dir import load_pretrained_model

    return load_pretrained_model(cfg.init_from, backend, cfg.block_size, cfg.dropout)
