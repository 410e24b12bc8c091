"""A byte-level BPE as a tiktoken Encoding, for `tinyllm prepare`'s encoding when tiktoken is installed.

tiktoken encodes GPT-2-style BPE about twice as fast per core as the tokenizers library and
releases the GIL, so prepare's threads share it out over the cores. It merges by the rank of a
merged token, where tokenizers applies its list of merges: the two agree when the vocabulary is
GPT-2's kind (no normalizer, GPT-2's pre-tokenizer, each merge's token id above the previous
merge's), which `as_tiktoken` checks; prepare also encodes a sample both ways and keeps the
tokenizers library when any id differs (docs/data.md).
"""
from __future__ import annotations

import json

GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def _byte_of_char() -> dict:
    """GPT-2's byte-level alphabet back to bytes: printable bytes stand for themselves, the rest for 256+n."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, n = dict((b, b) for b in printable), 0
    for b in range(256):
        if b not in chars:
            chars[b] = 256 + n
            n += 1
    return {chr(c): b for b, c in chars.items()}


def _gpt2_pre_tokenizer(pre) -> bool:
    if pre and pre.get("type") == "Sequence" and len(pre.get("pretokenizers", [])) == 1:
        pre = pre["pretokenizers"][0]
    return bool(pre) and pre.get("type") == "ByteLevel" and pre.get("use_regex", True) \
        and not pre.get("add_prefix_space", False)


def splits_like_gpt2(tk) -> bool:
    """Whether the tokenizers.Tokenizer `tk` pre-tokenizes as GPT-2 does (no normalizer; byte-level with GPT-2's
    pattern, no prefix space): then a text cut where that pattern splits anyway encodes as the whole does."""
    spec = json.loads(tk.to_str())
    return spec.get("normalizer") is None and _gpt2_pre_tokenizer(spec.get("pre_tokenizer"))


def _merges_in_id_order(model: dict) -> bool:
    vocab, last = model["vocab"], -1
    for m in model["merges"]:
        a, b = m.split(" ", 1) if isinstance(m, str) else m
        i = vocab.get(a + b)
        if i is None or i <= last:
            return False
        last = i
    return True


def as_tiktoken(tk):
    """The tokenizers.Tokenizer `tk` as a tiktoken Encoding (special tokens kept), or None when tiktoken
    is not installed or the tokenizer is not a plain GPT-2-style byte-level BPE."""
    try:
        import tiktoken
    except ImportError:
        return None
    spec = json.loads(tk.to_str())
    model = spec.get("model") or {}
    plain = (spec.get("normalizer") is None and _gpt2_pre_tokenizer(spec.get("pre_tokenizer"))
             and model.get("type") == "BPE" and not model.get("dropout") and not model.get("continuing_subword_prefix")
             and not model.get("end_of_word_suffix"))
    if not plain or not _merges_in_id_order(model):
        return None
    special = {t["content"]: t["id"] for t in spec.get("added_tokens", [])}
    byte = _byte_of_char()
    try:
        ranks = {bytes(byte[c] for c in s): i for s, i in model["vocab"].items() if s not in special}
    except KeyError:  # a token outside the byte-level alphabet
        return None
    if len(ranks) != len(model["vocab"]) - len(set(special) & set(model["vocab"])):
        return None
    try:
        return tiktoken.Encoding("tinyllm-bpe", pat_str=GPT2_PATTERN, mergeable_ranks=ranks, special_tokens=special)
    except Exception:  # tiktoken refuses ranks it cannot use
        return None
