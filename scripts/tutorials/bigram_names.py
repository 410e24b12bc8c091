"""A bigram language model of names, by counting.

Count how often each character follows each other one over all 32K names
(27 tokens: a-z plus one <bos> token that marks both the start and the end
of a name), add one to every count (smoothing: nothing gets probability 0),
normalise the rows. Claim: the mean negative log-likelihood over the whole
dataset is 2.45 +- 0.01 nats per character. Prints 10 sampled names.

    python scripts/tutorials/bigram_names.py --device cpu
"""
from __future__ import annotations

import math
import time

from _common import Claims, UsageError, get_device, line_ids, make_parser, positive, run, script

from tinyllm.data import names_dataset
from tinyllm.models import BigramConfig, BigramCounts, BigramLM
from tinyllm.sample import sample_lines

EXPECTED_NLL, TOL = 2.45, 0.01


def as_bigram_lm(counts: BigramCounts) -> BigramLM:
    """The counted table as the logit table of a BigramLM (log-probabilities are
    logits), so the library's sampler can walk it."""
    lm = BigramLM(BigramConfig(vocab_size=counts.vocab_size), device=counts.backend)
    lm.table.weight.data = counts.backend.xp.astype(counts.backend.xp.log(counts.probs), lm.table.weight.dtype)
    return lm


@script
def main(argv=None) -> int:
    p = make_parser(__doc__.splitlines()[0])
    p.add_argument("--smoothing", type=float, default=1.0, help="added to every count")
    p.add_argument("--samples", type=int, default=10, help="names to sample (0: none)")
    args = p.parse_args(argv)
    positive("samples", args.samples, low=0)
    if not args.smoothing >= 0:
        raise UsageError(f"--smoothing must be >= 0, got {args.smoothing}")
    backend = get_device(args.device)
    t0 = time.perf_counter()
    ds = names_dataset(args.seed)
    tok = ds.tokenizer
    seqs = [line_ids(tok, name) for name in ds.lines]
    model = BigramCounts(tok.vocab_size, smoothing=args.smoothing, device=backend).fit(seqs)
    nll = model.nll(seqs)
    probs = backend.to_host(model.probs).tolist()  # (V, V): row = current, column = next
    n_pairs = sum(len(s) - 1 for s in seqs)
    print(f"{len(seqs)} names, {n_pairs} character pairs, vocabulary {tok.vocab_size}, "
          f"fitted in {time.perf_counter() - t0:.2f}s")
    first = probs[tok.bos_id]
    top = sorted(range(tok.vocab_size), key=lambda j: -first[j])[:5]
    print("most likely first letters: " + ", ".join(f"{tok.itos[j]} {first[j]:.3f}" for j in top))
    print(f"NLL over the whole dataset: {nll:.4f} nats/char "
          f"(uniform guessing: ln {tok.vocab_size} = {math.log(tok.vocab_size):.4f})")
    if args.samples > 0:
        names = sample_lines(as_bigram_lm(model), tok, args.samples, max_new_tokens=30, temperature=1.0,
                             seed=args.seed)
        print("samples:", ", ".join(names))
    claims = Claims()
    claims.check(abs(nll - EXPECTED_NLL) <= TOL, f"NLL {nll:.4f} = {EXPECTED_NLL} +- {TOL}")
    return claims.exit_code()


if __name__ == "__main__":
    run(main)
