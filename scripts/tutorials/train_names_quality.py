"""Does the default `tinyllm train` deliver? Runs it exactly as a user would (no flags
but --out), then checks its claims and prints the figures (and one JSON line):

  * final val loss <= 2.10 (nats per character on held-out names)
  * samples mostly pronounceable (>= 80% of 50 pass a simple phonotactic check)
  * the wall time of the whole command (the target is about two minutes on a 2-core laptop CPU;
    on a shared machine this figure is noisy)

Exit 0 when the loss and pronounceability claims hold, 1 otherwise.

    OMP_NUM_THREADS=2 python scripts/tutorials/train_names_quality.py [--out out-names] [-- extra train flags]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time

from tinyllm import load_trained, sample_lines
from tinyllm.data import load_dataset

VAL_TARGET = 2.10
PRONOUNCEABLE_TARGET = 0.80
VOWELS = set("aeiouy")


def pronounceable(name: str) -> bool:
    """A rough English phonotactic check: 2..15 letters, a vowel, no 4 consonants or 3 same letters in a row."""
    if not 2 <= len(name) <= 15 or not name.isalpha() or not VOWELS & set(name):
        return False
    if re.search(r"[^aeiouy]{4}", name) or re.search(r"(.)\1\1", name):
        return False
    return True


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="out-names", help="output directory of the run (default out-names)")
    p.add_argument("--samples", type=int, default=50, help="names to sample for the pronounceability check")
    p.add_argument("extra", nargs="*", help="extra flags for tinyllm train (after --)")
    args = p.parse_args(argv)
    cmd = [sys.executable, "-m", "tinyllm", "train", "--out", args.out, *args.extra]
    print("$ " + " ".join(["tinyllm", *cmd[3:]]), f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')})",
          flush=True)
    t0 = time.perf_counter()
    rc = subprocess.call(cmd)
    wall = time.perf_counter() - t0
    if rc != 0:
        print(f"tinyllm train failed with exit code {rc}", file=sys.stderr)
        return 1
    evals = [json.loads(l) for l in open(os.path.join(args.out, "log.jsonl")) if '"eval"' in l]
    last = evals[-1]
    model, tok, meta = load_trained(args.out, "cpu")
    names = sample_lines(model, tok, args.samples, temperature=1.0, seed=1234)
    train = set(load_dataset("names").train_lines)
    ok = [n for n in names if pronounceable(n)]
    frac = len(ok) / len(names)
    new = sum(n not in train for n in names) / len(names)
    print("\nsamples:", ", ".join(names[:20]))
    print(f"\nval loss {last['val']:.4f} at step {last['step']} (target <= {VAL_TARGET})")
    print(f"pronounceable {frac:.0%} of {len(names)} samples (target >= {PRONOUNCEABLE_TARGET:.0%}); "
          f"not in the training set {new:.0%}")
    print(f"wall time of `tinyllm train`: {wall:.0f} s; last ms/step {last['ms_per_step']:.0f} "
          f"(shared CPU: expect noise)")
    good = last["val"] <= VAL_TARGET and frac >= PRONOUNCEABLE_TARGET
    print(json.dumps({"script": "train_names_quality", "val_loss": round(last["val"], 4), "step": last["step"],
                      "pronounceable": round(frac, 3), "novel": round(new, 3), "wall_s": round(wall, 1),
                      "ms_per_step": last["ms_per_step"], "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
                      "ok": good}))
    return 0 if good else 1


if __name__ == "__main__":
    from tinyllm.cli import run_guarded  # bad input (a missing data file, ...): one line, exit 2

    sys.exit(run_guarded(main))
