"""The data a run trains on: loaded with its tokenizer, stored resolved, fingerprinted, described, and held
against block_size before anything is written."""
from __future__ import annotations

import os

from ..data import DATASETS, DataError
from ..data.cached import cached_dataset
from ..data.shards import is_prepared, load_prepared
from ..errors import ConfigError
from .init_from import data_tokenizer


def load_run_data(cfg) -> tuple:
    """(cfg with a data file's path and --lines stored resolved, the Dataset, whether --lines was guessed).
    The split never depends on --seed; the tokenizer is the data's own, a BPE trained on it, or --init-from's.
    Every run trains from token shards: a `tinyllm prepare` folder brings its own and its tokenizer
    (data/shards.py); a file or a named dataset is tokenized once into the cache's (data/cached.py)."""
    if is_prepared(cfg.data):
        return _prepared(cfg)
    ds = cached_dataset(cfg.data, lines=cfg.lines, tokenizer=data_tokenizer(cfg), raw_text=cfg.raw_text)
    guessed = cfg.data not in DATASETS and cfg.lines is None
    if cfg.data not in DATASETS:  # --resume reads it as now
        cfg = cfg.replace(data=os.path.abspath(cfg.data), lines=ds.lines is not None)
    return cfg, ds, guessed


def _prepared(cfg) -> tuple:
    ds = load_prepared(cfg.data)
    if "tokenizer" in getattr(cfg, "given", ()):
        raise ConfigError(f"the prepared data in {cfg.data} carries its own tokenizer, so --tokenizer would be "
                          f"ignored; drop --tokenizer (or prepare again with the tokenizer you want)")
    if cfg.init_from:
        from ..gpt2 import load_pretrained_tokenizer

        if load_pretrained_tokenizer(cfg.init_from).with_bos(True).to_dict() != ds.tokenizer.to_dict():
            raise ConfigError(f"the prepared data in {cfg.data} was not tokenized with {cfg.init_from}'s "
                              f"tokenizer; prepare it with --tokenizer-from {cfg.init_from}")
    return cfg.replace(data=os.path.abspath(cfg.data), lines=False), ds, False


def data_info(cfg, ds) -> dict:
    """What the checkpoint stores about the data (a resume or another rank holds its own data against it)."""
    return {"spec": cfg.data, "lines": cfg.lines, "name": ds.name, "train_tokens": len(ds.train),
            "val_tokens": len(ds.val), "fingerprint": fingerprint(ds), **ds.info}


def fingerprint(ds) -> str:
    """A cached dataset's: a hash of its token streams in their compact type (data/cached.py), as tinyllm
    stored before the cache; prepared data: its manifest's (which holds every shard's size and sha256)."""
    if "manifest_sha256" in ds.info:
        return ds.info["manifest_sha256"][:16]
    return ds.info["fingerprint"]


def check_lengths(cfg, ds, block: int) -> None:
    """DataError unless both splits hold a block and its next token."""
    if "manifest_sha256" in ds.info:
        return _check_windows(cfg, ds, block)
    n = min(len(ds.train), len(ds.val))
    if n < block + 1:
        src = f"dataset {cfg.data!r}" if cfg.data in DATASETS else f"data file {cfg.data!r}"
        split = "training (90%)" if len(ds.train) <= len(ds.val) else "validation (10%)"
        raise DataError(f"{src} is too short for block_size {block}: its {split} split has {n} tokens and "
                        f"needs at least block_size + 1 = {block + 1}; use a longer file or a smaller block_size "
                        f"(--block-size)")


def _check_windows(cfg, ds, block: int) -> None:
    for name, split in (("training", ds.train), ("validation", ds.val)):
        split.set_width(block + 1)
        if split.starts < 1:
            raise DataError(f"the prepared data in {cfg.data} is too short for block_size {block}: no {name} "
                            f"shard holds block_size + 1 = {block + 1} tokens ({len(split):,} in all); use a "
                            f"smaller block_size (--block-size) or more data")


def describe_data(cfg, ds, guessed: bool) -> str:
    """'name (notes)': what cleaning did, and for a file what --lines chose and how to choose the other."""
    notes = list(ds.info.get("cleaned", []))
    if "manifest_sha256" in ds.info:
        notes.append(f"prepared, {len(ds.train.paths) + len(ds.val.paths)} shards")
    elif cfg.data not in DATASETS:
        how, other, flag = ("one example a line", "one text", "--no-lines") if cfg.lines else \
            ("one text", "one example a line", "--lines")
        notes.append(f"{how}, guessed: {flag} reads it as {other}" if guessed else how)
    return ds.name + (f" ({'; '.join(notes)})" if notes else "")
