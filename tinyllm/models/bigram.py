"""Bigram language models: closed-form counting, and the same table learned by gradient descent."""
from __future__ import annotations

from dataclasses import dataclass

from .. import ops as F
from ..nn import Embedding, Module
from ..autograd import Tensor
from .base import ModelConfig, model_backend, token_ids


@dataclass
class BigramConfig(ModelConfig):
    vocab_size: int = 27   # tokens in the vocabulary
    block_size: int = 1    # context the model uses (a bigram sees one token)

    def validate(self) -> "BigramConfig":
        self.positive_ints("vocab_size")
        return self


class BigramCounts:
    """P(next | current) from counts with add-k smoothing; no gradients involved."""

    def __init__(self, vocab_size: int, smoothing: float = 1.0, device=None):
        self.backend = model_backend(device)
        self.vocab_size = vocab_size
        self.smoothing = smoothing
        xp = self.backend.xp
        self.counts = xp.zeros((vocab_size, vocab_size), dtype=xp.float64, device=self.backend.device)

    def fit(self, sequences) -> "BigramCounts":
        """sequences: lists of token ids (each already wrapped in start/end tokens)."""
        xp, V = self.backend.xp, self.vocab_size
        pairs = [a * V + b for seq in sequences for a, b in zip(seq, seq[1:])]
        flat = self.backend.from_host(pairs, "int64")
        dev = self.backend.device
        ones = xp.ones((flat.shape[0],), dtype=xp.float64, device=dev)
        c = self.backend.scatter_add(xp.zeros((V * V,), dtype=xp.float64, device=dev), flat, ones)
        self.counts = self.counts + xp.reshape(c, (V, V))
        return self

    @property
    def probs(self):
        p = self.counts + self.smoothing
        return p / self.backend.xp.sum(p, axis=1, keepdims=True)  # (V, V)

    def nll(self, sequences) -> float:
        """Mean negative log-likelihood per predicted token."""
        xp, V = self.backend.xp, self.vocab_size
        idx = self.backend.from_host([a * V + b for s in sequences for a, b in zip(s, s[1:])], "int64")
        logp = xp.take(xp.reshape(xp.log(self.probs), (-1,)), idx)
        return float(-xp.mean(logp))

    def logits(self, idx) -> Tensor:
        """log-probabilities of the next token for each token in idx (B, T) -> (B, T, V)."""
        logp = Tensor.from_op(self.backend.xp.log(self.probs), self.backend)
        return F.embedding(logp, idx)


class BigramLM(Module):
    """A learned (V, V) logit table: row = current token, column = next token."""

    def __init__(self, config: BigramConfig, device=None, seed: int = 0):
        self.config = config.validate()
        backend = model_backend(device)
        self.table = Embedding(config.vocab_size, config.vocab_size, backend.rng(seed), std=0.01)

    def describe(self) -> str:
        return "bigram"

    def forward(self, idx, targets=None, cache=None, pos: int = 0):
        logits = self.table(token_ids(self, idx, self.table.weight.backend))  # (B, T, V)
        return logits, (None if targets is None else F.cross_entropy(logits, targets))
