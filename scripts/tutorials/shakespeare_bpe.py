"""Tiny Shakespeare: byte-level BPE (vocab 512) against characters, same model, same steps, in bits per character.

Both runs use nanoGPT's CPU recipe (scripts/tutorials/shakespeare.py: 4 layers, 4 heads,
128 wide, block 64 tokens, batch 12, 2000 steps) and differ only in the
tokenizer. Losses per token are not comparable across tokenizers, so each
validation loss (mean nats per token over --val-batches batches) becomes bits
per character:

    bits/char = (nats/token) / ln 2 * (validation tokens / validation characters)

with the token and character counts of the same validation text (the last 10%
of the file; the BPE is trained on the first 90% only). A block of 64 BPE tokens
spans more characters than 64 characters do: the table shows how many.

    python scripts/tutorials/shakespeare_bpe.py [--steps 2000] [--vocab-size 512] [--json]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def run(cfg, val_batches: int) -> dict:
    from tinyllm import Trainer

    t0 = time.perf_counter()
    tr = Trainer(cfg, verbose=False).fit()
    ev = tr.evaluate(iters=val_batches, batch_size=cfg.batch_size)
    ds = tr.dataset
    val_chars = ds.info.get("val_chars", len(ds.val))  # the char tokenizer: one token per character
    chars_per_token = val_chars / len(ds.val)
    return {"tokenizer": cfg.tokenizer, "vocab": tr.tokenizer.vocab_size, "steps": tr.step,
            "val_nats_per_token": ev["val"], "train_nats_per_token": ev["train"],
            "val_tokens": len(ds.val), "val_chars": val_chars, "chars_per_token": chars_per_token,
            "val_bits_per_char": ev["val"] / math.log(2) / chars_per_token,
            "context_chars": cfg.block_size * chars_per_token, "wall_s": time.perf_counter() - t0,
            "sample": tr.generate(prompt=_prompt(tr.tokenizer), num_samples=1, max_new_tokens=60, temperature=0.8,
                                  seed=1)[0]}


def _prompt(tok, text: str = "ROMEO:") -> str:
    from tinyllm.data import TokenizerError

    try:
        tok.encode(text)
        return text
    except TokenizerError:  # a char vocabulary without these letters (another --data)
        return ""


def main(argv=None) -> int:
    sys.path.insert(0, HERE)
    from shakespeare import find_data, recipe

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=None, help="path to tinyshakespeare.txt (default: found, or $DATA)")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--vocab-size", type=int, default=512)
    p.add_argument("--val-batches", type=int, default=200, help="batches of the final validation (default 200)")
    p.add_argument("--eval-iters", type=int, default=20, help="batches per split in the logged evaluations")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--out", default="out-shakespeare-bpe", help="runs go to OUT/char and OUT/bpe")
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    data = a.data or find_data()
    rows = []
    for tok in ("char", "bpe"):
        extra = {"tokenizer": "bpe", "vocab_size": a.vocab_size} if tok == "bpe" else {}
        cfg = recipe(data, a.steps, a.device, a.seed, os.path.join(a.out, tok), samples=0, overwrite=True,
                     eval_iters=a.eval_iters, **extra)
        rows.append(run(cfg, a.val_batches))
        print(f"  done: {tok}", file=sys.stderr, flush=True)
    if a.json:
        print(json.dumps({"script": "shakespeare_bpe", "data": data, "rows": rows}, indent=1))
        return 0
    print(f"Tiny Shakespeare, nanoGPT CPU recipe, {a.steps} steps, validation over {a.val_batches} batches of 12 x 64:")
    print(f"{'tokenizer':>10} {'vocab':>6} | {'val nats/token':>14} {'chars/token':>11} {'val bits/char':>13} | "
          f"{'context (chars)':>15} {'wall s':>7}")
    for r in rows:
        print(f"{r['tokenizer']:>10} {r['vocab']:>6} | {r['val_nats_per_token']:>14.4f} {r['chars_per_token']:>11.3f} "
              f"{r['val_bits_per_char']:>13.4f} | {r['context_chars']:>15.0f} {r['wall_s']:>7.0f}")
    for r in rows:
        print(f"{r['tokenizer']} sample: {r['sample']!r}")
    return 0


if __name__ == "__main__":
    from tinyllm.cli import run_guarded  # bad input (a missing data file, ...): one line, exit 2

    sys.exit(run_guarded(main))
