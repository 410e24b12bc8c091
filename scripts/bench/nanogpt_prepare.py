"""nanoGPT's data/shakespeare/prepare.py, the side `tinyllm prepare` is measured against (docs/data.md).

    python scripts/bench/nanogpt_prepare.py corpus.txt HF_DIR [OUT_DIR]

Read the text, split it 90/10, encode each part in one process with tiktoken, write uint16 train.bin / val.bin.
tiktoken is given the merges of HF_DIR/tokenizer.json (a byte-level BPE such as GPT-2's or one tinyllm trained),
so both sides encode with the same tokenizer without a download.
"""
import json
import os
import sys
import time

import numpy as np
import tiktoken

GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def byte_of_char() -> dict:
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def encoding(hf_dir: str) -> tiktoken.Encoding:
    with open(os.path.join(hf_dir, "tokenizer.json"), encoding="utf-8") as f:
        tj = json.load(f)
    byte = byte_of_char()
    specials = {t["content"]: t["id"] for t in tj["added_tokens"]}
    ranks = {bytes(byte[c] for c in s): i for s, i in tj["model"]["vocab"].items() if s not in specials}
    return tiktoken.Encoding("bench", pat_str=GPT2_PATTERN, mergeable_ranks=ranks, special_tokens=specials)


def main(path: str, hf_dir: str, out: str = ".") -> None:
    t0 = time.perf_counter()
    enc = encoding(hf_dir)
    with open(path, encoding="utf-8") as f:
        data = f.read()
    n = len(data)
    train_ids = enc.encode_ordinary(data[:int(n * 0.9)])
    val_ids = enc.encode_ordinary(data[int(n * 0.9):])
    np.array(train_ids, dtype=np.uint16).tofile(os.path.join(out, "train.bin"))
    np.array(val_ids, dtype=np.uint16).tofile(os.path.join(out, "val.bin"))
    secs = time.perf_counter() - t0
    mb = len(data.encode("utf-8")) / 1e6
    print(f"{len(train_ids) + len(val_ids):,} tokens, {mb:.1f} MB in {secs:.2f}s ({mb / secs:.2f} MB/s)")


if __name__ == "__main__":
    main(*sys.argv[1:])
