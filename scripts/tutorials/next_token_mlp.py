"""Next-token prediction with an MLP, on one five-word sentence.

Vocabulary: the words of "The capital of France Paris". Each word, one-hot
(5), goes through Linear 16 -> GELU -> Linear 5, softmax + cross-entropy,
plain gradient descent (lr 0.3) for 500 epochs on the four (word, next word)
pairs. Claim: all 4 next words right, loss < 0.005 and p(correct) > 0.99
for each; every prediction is printed with its probability.

    python scripts/tutorials/next_token_mlp.py --device cpu
"""
from __future__ import annotations

from _common import Claims, LossLog, get_device, make_parser, positive, positive_float, run, script

from tinyllm import no_grad, ops, tensor
from tinyllm.nn import Linear, Module
from tinyllm.optim import SGD

SENTENCE = "The capital of France Paris"
MAX_LOSS = 0.005
MIN_PROB = 0.99


class NextWordMLP(Module):
    def __init__(self, vocab: int, hidden: int, rng):
        self.fc = Linear(vocab, hidden, rng=rng)
        self.out = Linear(hidden, vocab, rng=rng)

    def forward(self, onehot):
        return self.out(ops.gelu(self.fc(onehot)))  # (N, V) logits


@script
def main(argv=None) -> int:
    p = make_parser(__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=500)
    p.add_argument("--lr", type=float, default=0.3)
    p.add_argument("--hidden", type=int, default=16)
    args = p.parse_args(argv)
    positive("epochs", args.epochs)
    positive("hidden", args.hidden)
    positive_float("lr", args.lr)
    backend = get_device(args.device)

    words = SENTENCE.split()
    V = len(words)
    ctx = list(range(V - 1))          # each word but the last ...
    nxt = list(range(1, V))           # ... predicts the one after it
    x = tensor([[1.0 if j == i else 0.0 for j in range(V)] for i in ctx], device=backend)  # (4, 5) one-hot
    y = backend.from_host(nxt, "int64")

    model = NextWordMLP(V, args.hidden, backend.rng(args.seed))
    print(f"model: one-hot {V} -> {args.hidden} GELU -> {V}, {model.num_parameters()} parameters")
    opt = SGD(model.parameters(), lr=args.lr)
    log = LossLog(args.epochs, label="epoch")
    for epoch in range(args.epochs):
        loss = ops.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        log(epoch, loss.item())

    with no_grad():
        logits = model(x)
        loss = ops.cross_entropy(logits, y).item()
        probs = ops.softmax(logits).tolist()
    claims = Claims()
    right = 0
    for i, row in zip(ctx, probs):
        guess = max(range(V), key=lambda j: row[j])
        right += guess == i + 1
        print(f"  {words[i]:>8} -> {words[guess]:<8} p={row[guess]:.4f}   (p of {words[i + 1]!r}: {row[i + 1]:.4f})")
        claims.check(row[i + 1] > MIN_PROB, f"p({words[i + 1]} | {words[i]}) = {row[i + 1]:.4f} > {MIN_PROB}")
    print(f"final loss {loss:.5f}, {right}/{len(ctx)} next words right")
    claims.check(right == len(ctx), f"{right}/{len(ctx)} next words right")
    claims.check(loss < MAX_LOSS, f"final loss {loss:.5f} < {MAX_LOSS}")
    return claims.exit_code()


if __name__ == "__main__":
    run(main)
