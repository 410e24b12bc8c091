"""GPT: token + position embeddings, pre-norm transformer blocks, a final
norm and a language-model head (optionally tied to the token embedding)."""
from __future__ import annotations

from dataclasses import dataclass

from .. import ops as F
from ..nn import Block, Dropout, Embedding, Linear, Module, ModuleList
from ..nn.layers import init_stds, norm_layer
from .base import ModelConfig, model_backend, token_ids


@dataclass
class GPTConfig(ModelConfig):
    # the defaults are what `tinyllm train` builds on the embedded names (tinyllm/train/config.py)
    vocab_size: int = 27       # tokens in the vocabulary (the names: 26 letters + <bos>)
    block_size: int = 32       # longest context the model sees (position table size)
    n_layer: int = 4           # transformer blocks
    n_head: int = 4            # attention heads per block
    n_embd: int = 64           # embedding width (divisible by n_head)
    dropout: float = 0.0       # dropout on residual branches; 0 for small data
    bias: bool = True          # biases in Linear and LayerNorm layers
    tie_weights: bool = True   # the LM head reuses the token embedding matrix
    norm: str = "layer"        # "layer" (LayerNorm) or "rms" (RMSNorm)
    norm_affine: bool = True   # learned gain (and bias) in the norms
    activation: str = "gelu"   # MLP non-linearity: "gelu" or "relu"
    final_norm: bool = True    # a norm before the LM head

    def validate(self) -> "GPTConfig":
        self.positive_ints("vocab_size", "block_size", "n_layer", "n_head", "n_embd")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head}); "
                             f"try n_embd={self.n_head * max(1, round(self.n_embd / self.n_head))}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.norm not in ("layer", "rms"):
            raise ValueError(f"norm must be 'layer' or 'rms', got {self.norm!r}")
        if self.activation not in ("gelu", "relu"):
            raise ValueError(f"activation must be 'gelu' or 'relu', got {self.activation!r}")
        return self


class GPT(Module):
    def __init__(self, config: GPTConfig, device=None, seed: int = 0):
        self.config = c = config.validate()
        backend = model_backend(device)
        rng = backend.rng(seed)
        std, _ = init_stds(c)
        self.wte = Embedding(c.vocab_size, c.n_embd, rng, std=std)
        self.wpe = Embedding(c.block_size, c.n_embd, rng, std=std)
        self.blocks = ModuleList([Block(c, rng) for _ in range(c.n_layer)])
        self.ln_f = norm_layer(c, rng) if c.final_norm else None
        self.lm_head = None if c.tie_weights else Linear(c.n_embd, c.vocab_size, bias=False, rng=rng, std=std)
        self.drop = Dropout(c.dropout, rng)

    def describe(self) -> str:
        c = self.config
        return f"gpt {c.n_layer} layers x {c.n_head} heads x {c.n_embd} embd, block {c.block_size}"

    def forward(self, idx, targets=None, cache: "list | None" = None, pos: int = 0):
        """idx (B, T) int -> (logits (B, T, V), the mean cross-entropy against targets (B, T), or None
        without targets).

        cache: a list with one dict per block (keys/values of earlier positions) for
        incremental decoding; pos is the position of idx[:, 0].
        """
        be = self.wte.weight.backend
        xp = be.xp
        i = token_ids(self, idx, be)
        B, T = i.shape
        if pos + T > self.config.block_size:
            raise ValueError(f"sequence of {pos + T} tokens is longer than block_size {self.config.block_size}")
        positions = xp.arange(pos, pos + T, dtype=i.dtype, device=be.device)
        x = self.drop(self.wte(i) + self.wpe(positions))  # (B, T, C)
        for k, block in enumerate(self.blocks):
            x = block(x, None if cache is None else cache[k])
        if self.ln_f is not None:
            x = self.ln_f(x)
        if self.lm_head is not None:
            logits = self.lm_head(x)  # (B, T, V)
        else:  # tied: the embedding's (V, C) table, read transposed
            logits = F.linear(x, self.wte.weight, transpose_w=True)  # (B, T, V)
        return logits, (None if targets is None else F.cross_entropy(logits, targets))

    def new_cache(self) -> list:
        return [{} for _ in range(self.config.n_layer)]
