"""Char-window MLP (Bengio et al. 2003): the previous k tokens -> embeddings ->
hidden layer -> next-token logits."""
from __future__ import annotations

from dataclasses import dataclass

from .. import ops as F
from ..nn import Embedding, Linear, Module
from ..autograd import Tensor
from .base import ModelConfig, model_backend, token_ids


@dataclass
class MLPConfig(ModelConfig):
    vocab_size: int = 27    # tokens in the vocabulary
    block_size: int = 3     # context: how many previous tokens the model sees (k)
    n_embd: int = 16        # embedding width per token
    n_hidden: int = 128     # hidden units
    activation: str = "tanh"  # "tanh", "relu" or "gelu"

    def validate(self) -> "MLPConfig":
        self.positive_ints("vocab_size", "block_size", "n_embd", "n_hidden")
        if self.activation not in ("tanh", "relu", "gelu"):
            raise ValueError(f"activation must be tanh, relu or gelu, got {self.activation!r}")
        return self


class CharMLP(Module):
    def __init__(self, config: MLPConfig, device=None, seed: int = 0):
        self.config = c = config.validate()
        backend = model_backend(device)
        rng = backend.rng(seed)
        self.emb = Embedding(c.vocab_size, c.n_embd, rng, std=1.0)
        self.hidden = Linear(c.block_size * c.n_embd, c.n_hidden, rng=rng, init="uniform")
        self.out = Linear(c.n_hidden, c.vocab_size, rng=rng, std=0.01)

    def describe(self) -> str:
        c = self.config
        return f"mlp context {c.block_size}, {c.n_embd} embd, {c.n_hidden} hidden"

    def window_logits(self, ctx) -> Tensor:
        """ctx (N, k) token ids -> logits (N, V) for the token after each window."""
        N = ctx.shape[0]
        e = self.emb(ctx).reshape(N, -1)  # (N, k*C)
        h = self.hidden(e)
        h = {"tanh": F.tanh, "relu": F.relu, "gelu": F.gelu}[self.config.activation](h)
        return self.out(h)  # (N, V)

    def forward(self, idx, targets=None, cache=None, pos: int = 0):
        """Sequence interface shared with GPT: idx (B, T) -> (logits (B, T, V), loss or None).

        Position t sees tokens t-k+1..t (earlier positions are padded with
        token 0, the start/end token of line datasets).
        """
        be = self.emb.weight.backend
        xp = be.xp
        i = token_ids(self, idx, be)
        B, T = i.shape
        k = self.config.block_size
        padded = xp.concat([xp.zeros((B, k - 1), dtype=i.dtype, device=be.device), i], axis=1)  # (B, T+k-1)
        windows = xp.stack([padded[:, j:j + T] for j in range(k)], axis=-1)  # (B, T, k)
        logits = self.window_logits(xp.reshape(windows, (B * T, k))).reshape(B, T, -1)
        return logits, (None if targets is None else F.cross_entropy(logits, targets))
