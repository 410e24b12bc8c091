"""Layers. Weights are drawn on the host from a seeded RNG (same seed, same
weights on every device)."""
from __future__ import annotations

import math

from backends import RNG

from .. import ops as F
from ..random import RandomStream, next_seed
from ..autograd import Tensor
from .module import Module, Parameter, default_rng


def _param(rng: RNG, shape, std: float | None = None, fill: float | None = None, low: float | None = None) -> Parameter:
    b = rng.backend
    if fill is not None:
        data = b.xp.full(shape, fill, dtype=b.xp.float32, device=b.device)
    elif low is not None:
        data = rng.uniform(shape, -low, low)
    else:
        data = rng.normal(shape, std)
    return Parameter(data, device=b)


class Linear(Module):
    """y = x W + b, W of shape (in, out). init: "normal" (std), or "uniform" (PyTorch's +-1/sqrt(in))."""

    def __init__(self, n_in: int, n_out: int, bias: bool = True, rng: RNG | None = None,
                 std: float | None = None, init: str = "normal"):
        rng = default_rng(rng)
        if init == "uniform":
            self.weight = _param(rng, (n_in, n_out), low=1.0 / math.sqrt(n_in))
        else:
            self.weight = _param(rng, (n_in, n_out), std=std if std is not None else 1.0 / math.sqrt(n_in))
        self.bias = _param(rng, (n_out,), fill=0.0) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)  # (..., out)


class Embedding(Module):
    def __init__(self, n: int, dim: int, rng: RNG | None = None, std: float = 1.0):
        self.weight = _param(default_rng(rng), (n, dim), std=std)

    def forward(self, idx) -> Tensor:
        return F.embedding(self.weight, idx)  # idx.shape + (dim,)


class LayerNorm(Module):
    def __init__(self, dim: int, bias: bool = True, eps: float = 1e-5, rng: RNG | None = None):
        rng = default_rng(rng)
        self.weight = _param(rng, (dim,), fill=1.0)
        self.bias = _param(rng, (dim,), fill=0.0) if bias else None
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x, self.weight, self.bias, self.eps)


class RMSNorm(Module):
    def __init__(self, dim: int, eps: float = 1e-5, rng: RNG | None = None, weight: bool = True):
        self.weight = _param(default_rng(rng), (dim,), fill=1.0) if weight else None
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        return F.rms_norm(x, self.weight, self.eps)


def make_norm_layer(kind: str, dim: int, bias: bool = True, affine: bool = True, rng: RNG | None = None) -> Module:
    """"layer" -> LayerNorm, "rms" -> RMSNorm; affine=False drops the learned gain (and bias)."""
    if kind == "layer":
        ln = LayerNorm(dim, bias=bias and affine, rng=rng)
        if not affine:
            ln.weight = None
        return ln
    if kind == "rms":
        return RMSNorm(dim, rng=rng, weight=affine)
    raise ValueError(f"unknown norm {kind!r}; use 'layer' or 'rms'")


class Dropout(Module):
    """Zeroes a fraction p in training mode. Its masks come from a RandomStream keyed by the
    model's seed and a site number drawn from the init RNG (without an rng: from the global
    generator, tinyllm.manual_seed), so runs repeat and no two layers share masks; a training
    loop sets `stream.counter` to the step (resuming needs only the step)."""

    def __init__(self, p: float = 0.0, rng: RNG | None = None):
        self.p = p
        self.stream = None
        if p > 0:
            if rng is None:
                seed = next_seed()
                self.stream = RandomStream(seed=seed, site=seed & 0x7FFFFFFF)
            else:
                site = int(rng.host_integers(0, 2**31, None))
                seed = rng.seed if rng.seed is not None else int(rng.host_integers(0, 2**63, None))
                self.stream = RandomStream(seed=seed, site=site)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        return F.dropout(x, self.p, self.stream, training=True)


def init_stds(config) -> tuple:
    """(std, proj_std): GPT-2's init, 0.02, and residual projections scaled down by depth."""
    return 0.02, 0.02 / math.sqrt(2 * config.n_layer)


class MLP(Module):
    """Linear (C -> 4C) -> activation -> Linear (4C -> C) -> dropout, from a GPTConfig
    (n_embd, bias, dropout, activation, n_layer)."""

    def __init__(self, config, rng: RNG | None = None):
        rng = default_rng(rng)
        c = config
        std, proj_std = init_stds(c)
        self.fc = Linear(c.n_embd, 4 * c.n_embd, bias=c.bias, rng=rng, std=std)
        self.proj = Linear(4 * c.n_embd, c.n_embd, bias=c.bias, rng=rng, std=proj_std)
        self.act = c.activation
        self.drop = Dropout(c.dropout, rng)

    def forward(self, x: Tensor) -> Tensor:
        h = self.fc(x)  # (..., 4C)
        h = F.gelu(h) if self.act == "gelu" else F.relu(h)
        return self.drop(self.proj(h))


class CausalSelfAttention(Module):
    """Multi-head causal self-attention with one fused qkv projection, from a GPTConfig
    (n_embd, n_head, bias, dropout, n_layer)."""

    def __init__(self, config, rng: RNG | None = None):
        c = config
        if c.n_embd % c.n_head:
            raise ValueError(f"n_embd ({c.n_embd}) must be divisible by n_head ({c.n_head})")
        rng = default_rng(rng)
        std, proj_std = init_stds(c)
        self.n_head = c.n_head
        self.qkv = Linear(c.n_embd, 3 * c.n_embd, bias=c.bias, rng=rng, std=std)
        self.proj = Linear(c.n_embd, c.n_embd, bias=c.bias, rng=rng, std=proj_std)
        self.drop = Dropout(c.dropout, rng)

    def forward(self, x: Tensor, cache: "dict | None" = None) -> Tensor:
        if cache is None:  # training and scoring: the heads read straight out of the one projection
            return self.drop(self.proj(F.self_attention(self.qkv(x), self.n_head)))  # (B, T, C)
        B, T, C = x.shape
        nh, hs = self.n_head, C // self.n_head
        qkv = F.unbind(self.qkv(x).reshape(B, T, 3, nh, hs), axis=2)  # 3 x (B, T, nh, hs)
        q, k, v = (t.permute(0, 2, 1, 3) for t in qkv)  # (B, nh, T, hs)
        if "k" in cache:  # sampling: keys and values of earlier positions
            k = F.concat([cache["k"], k], axis=2)
            v = F.concat([cache["v"], v], axis=2)
        cache["k"], cache["v"] = k.detach(), v.detach()
        y = F.attention(q, k, v, causal=True)  # (B, nh, T, hs)
        y = y.permute(0, 2, 1, 3).reshape(B, T, C)
        return self.drop(self.proj(y))


def norm_layer(config, rng: RNG | None = None) -> Module:
    """The norm a GPTConfig asks for: config.norm "layer" or "rms", with a learned gain (and bias)
    when config.norm_affine (and config.bias)."""
    return make_norm_layer(config.norm, config.n_embd, config.bias, config.norm_affine, rng)


class Block(Module):
    """Pre-norm transformer block from a GPTConfig: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, config, rng: RNG | None = None):
        rng = default_rng(rng)
        self.ln1 = norm_layer(config, rng)
        self.attn = CausalSelfAttention(config, rng)
        self.ln2 = norm_layer(config, rng)
        self.mlp = MLP(config, rng)

    def forward(self, x: Tensor, cache: "dict | None" = None) -> Tensor:
        x = x + self.attn(self.ln1(x), cache)  # (B, T, C)
        return x + self.mlp(self.ln2(x))
