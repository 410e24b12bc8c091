"""A word-level calculator: a ~100K-parameter transformer that does arithmetic in words.

Every problem "a op b equals c" with a, b, c in 0..99 and op plus / minus /
times ("two plus three equals five"), one token per word. The problems (not
the sequences) are split 90/10, so no held-out problem is ever trained on.
Each step is a batch of whole problems, <bos> a op b equals c <bos>, padded;
the loss counts only the answer and the end token. "times" problems are
only 6% of the data and the hardest, so each is drawn 4 times as often.
AdamW, warmup + cosine, gradient clipping at 1.0. Answers are decoded greedily after "equals" until
the end token. Claim: >= 99% exact match on the held-out problems.

    python scripts/tutorials/calculator.py --device cpu
"""
from __future__ import annotations

import random
import time

from _common import (IGNORE, Claims, LossLog, get_device, line_ids, make_parser, padded_batch, positive,
                     positive_float, run, script)

from tinyllm import ops
from tinyllm.data import arithmetic_dataset
from tinyllm.models import build_model
from tinyllm.optim import AdamW, clip_grad_norm, decay_groups, make_schedule
from tinyllm.sample import generate

MIN_ACCURACY = 0.99
BLOCK = 10  # the longest problem is 8 words + 2 <bos>: 9 inputs


def split_problem(tok, line: str):
    """'a op b equals c' -> (prompt ids ending in 'equals', answer ids)."""
    ids = line_ids(tok, line)
    cut = ids.index(tok.stoi["equals"]) + 1
    return ids[:cut], ids[cut:-1]


def operator(line: str) -> str:
    return next(w for w in line.split() if w in ("plus", "minus", "times"))


def accuracy(model, tok, lines: list, show: int = 0, label: str = ""):
    """Exact-match rate of greedy answers; prints it per operator and the first `show` mistakes."""
    right, wrong = {}, []
    for line in lines:
        prompt, answer = split_problem(tok, line)
        got = generate(model, prompt, max_new_tokens=len(answer) + 2, temperature=0.0, stop_token=tok.bos_id)
        ok = right.setdefault(operator(line), [])
        ok.append(got == answer)
        if got != answer and len(wrong) < show:
            wrong.append(f"{tok.decode(prompt)} -> {tok.decode(got)!r} (should be {tok.decode(answer)!r})")
    for w in wrong:
        print("  wrong:", w)
    if label:
        print(f"{label}: " + ", ".join(f"{op} {sum(v)}/{len(v)}" for op, v in right.items()))
    return sum(sum(v) for v in right.values()) / len(lines)


@script
def main(argv=None) -> int:
    p = make_parser(__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=6000)
    p.add_argument("--batch", type=int, default=128, help="problems per step")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--n-layer", type=int, default=2)
    p.add_argument("--n-embd", type=int, default=64)
    p.add_argument("--n-head", type=int, default=4)
    p.add_argument("--times-weight", type=int, default=4,
                   help="draw each 'times' problem this many times as often (they are 6%% of the problems)")
    p.add_argument("--eval-train", type=int, default=500, help="training problems to score too (0: none)")
    args = p.parse_args(argv)
    for name in ("steps", "batch", "n_layer", "n_embd", "n_head", "times_weight"):
        positive(name.replace("_", "-"), getattr(args, name))
    positive_float("lr", args.lr)
    backend = get_device(args.device)
    ds = arithmetic_dataset(args.seed)
    tok = ds.tokenizer
    model = build_model("gpt", vocab_size=tok.vocab_size, block_size=BLOCK, n_layer=args.n_layer,
                        n_head=args.n_head, n_embd=args.n_embd, device=backend, seed=args.seed)
    print(f"{len(ds.train_lines)} training / {len(ds.val_lines)} held-out problems, {tok.vocab_size} words; "
          f"model: GPT {args.n_layer}x{args.n_embd}, {model.num_parameters()} parameters")
    leaked = set(ds.train_lines) & set(ds.val_lines)

    lines = [s for s in ds.train_lines for _ in range(args.times_weight if operator(s) == "times" else 1)]
    train = [line_ids(tok, s) for s in lines]
    answer_at = [len(split_problem(tok, s)[0]) for s in lines]  # first answer position in each sequence
    opt = AdamW(decay_groups(model, 0.1), lr=args.lr, betas=(0.9, 0.98))
    schedule = make_schedule("cosine", args.lr, args.steps, warmup=min(100, args.steps // 10))
    rng = random.Random(args.seed)
    log = LossLog(args.steps)
    for step in range(args.steps):
        pick = rng.sample(range(len(train)), args.batch)
        xs, ys = padded_batch([train[i] for i in pick], BLOCK - 1, loss_from=[answer_at[i] for i in pick])
        logits, _ = model(backend.from_host(xs, "int64"))  # (B, T, V)
        loss = ops.cross_entropy(logits, backend.from_host(ys, "int64"), ignore_index=IGNORE)
        opt.zero_grad()
        loss.backward()
        norm = clip_grad_norm(model.parameters(), 1.0)
        opt.lr = schedule(step)
        opt.step()
        log(step, loss.item(), lr=opt.lr, grad_norm=norm)
    train_time = log.elapsed()

    t0 = time.perf_counter()
    val_acc = accuracy(model, tok, ds.val_lines, show=5, label="held-out, right by operator")
    print(f"held-out exact match: {val_acc:.2%} of {len(ds.val_lines)} problems "
          f"(trained {train_time:.1f}s, scored {time.perf_counter() - t0:.1f}s, device {backend.name})")
    if args.eval_train:
        print(f"training-set exact match (first {args.eval_train}): "
              f"{accuracy(model, tok, ds.train_lines[:args.eval_train]):.2%}")
    for line in ds.val_lines[:3]:
        prompt, _ = split_problem(tok, line)
        print(f"  {tok.decode(prompt)} {tok.decode(generate(model, prompt, 4, temperature=0.0, stop_token=0))}")
    claims = Claims()
    claims.check(not leaked, f"no held-out problem is a training problem ({len(leaked)} shared)")
    claims.check(val_acc >= MIN_ACCURACY, f"held-out exact match {val_acc:.2%} >= {MIN_ACCURACY:.0%}")
    return claims.exit_code()


if __name__ == "__main__":
    run(main)
