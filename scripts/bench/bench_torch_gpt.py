"""The PyTorch twin of tinyllm's GPT, for scripts/bench/bench.py (torch is never a
dependency of tinyllm: this file is imported only when `import torch` works).

Written the way nanoGPT writes it (nn.Linear, F.scaled_dot_product_attention,
LayerNorm without bias when bias=False, tied lm_head), with GELU in its tanh
form because that is the form tinyllm computes. `copy_from_tinyllm` loads
tinyllm's initial weights (Linear weights transposed: tinyllm stores (in, out)).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class LayerNorm(nn.Module):
    def __init__(self, dim: int, bias: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim)) if bias else None

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.n_head = c.n_head
        self.qkv = nn.Linear(c.n_embd, 3 * c.n_embd, bias=c.bias)
        self.proj = nn.Linear(c.n_embd, c.n_embd, bias=c.bias)
        self.dropout = c.dropout
        self.resid_drop = nn.Dropout(c.dropout)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_drop(self.proj(y))


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.fc = nn.Linear(c.n_embd, 4 * c.n_embd, bias=c.bias)
        self.proj = nn.Linear(4 * c.n_embd, c.n_embd, bias=c.bias)
        self.drop = nn.Dropout(c.dropout)

    def forward(self, x):
        return self.drop(self.proj(F.gelu(self.fc(x), approximate="tanh")))


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.ln1 = LayerNorm(c.n_embd, c.bias)
        self.attn = Attention(c)
        self.ln2 = LayerNorm(c.n_embd, c.bias)
        self.mlp = MLP(c)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class TorchGPT(nn.Module):
    """c: a tinyllm GPTConfig (layer norm, gelu, tied weights, final norm)."""

    def __init__(self, c):
        super().__init__()
        if c.norm != "layer" or c.activation != "gelu" or not c.final_norm or not c.norm_affine:
            raise ValueError("the PyTorch twin covers the nanoGPT layout only (layer norm, gelu, final norm)")
        self.config = c
        self.wte = nn.Embedding(c.vocab_size, c.n_embd)
        self.wpe = nn.Embedding(c.block_size, c.n_embd)
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList([Block(c) for _ in range(c.n_layer)])
        self.ln_f = LayerNorm(c.n_embd, c.bias)
        self.lm_head = nn.Linear(c.n_embd, c.vocab_size, bias=False)
        if c.tie_weights:
            self.lm_head.weight = self.wte.weight

    def forward(self, idx, targets=None):
        T = idx.shape[1]
        pos = torch.arange(T, device=idx.device)
        x = self.drop(self.wte(idx) + self.wpe(pos))
        for b in self.blocks:
            x = b(x)
        logits = self.lm_head(self.ln_f(x))
        if targets is None:
            return logits
        return logits, F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))


def name_map(c) -> dict:
    """tinyllm parameter name -> (torch parameter name, transpose?)."""
    m = {"wte.weight": ("wte.weight", False), "wpe.weight": ("wpe.weight", False),
         "ln_f.weight": ("ln_f.weight", False)}
    if c.bias:
        m["ln_f.bias"] = ("ln_f.bias", False)
    if not c.tie_weights:
        m["lm_head.weight"] = ("lm_head.weight", True)
    for i in range(c.n_layer):
        for part in ("ln1", "ln2"):
            m[f"blocks.{i}.{part}.weight"] = (f"blocks.{i}.{part}.weight", False)
            if c.bias:
                m[f"blocks.{i}.{part}.bias"] = (f"blocks.{i}.{part}.bias", False)
        for lin in ("attn.qkv", "attn.proj", "mlp.fc", "mlp.proj"):
            m[f"blocks.{i}.{lin}.weight"] = (f"blocks.{i}.{lin}.weight", True)
            if c.bias:
                m[f"blocks.{i}.{lin}.bias"] = (f"blocks.{i}.{lin}.bias", False)
    return m


def copy_from_tinyllm(tmodel: TorchGPT, model) -> None:
    """Load a tinyllm GPT's weights into the twin (every tensor must map)."""
    params = dict(tmodel.named_parameters())
    mapping = name_map(model.config)
    names = dict(model.named_parameters())
    if set(names) != set(mapping):
        raise ValueError(f"parameter names differ: {sorted(set(names) ^ set(mapping))}")
    with torch.no_grad():
        for n, p in names.items():
            tn, transpose = mapping[n]
            a = torch.from_numpy(p.numpy().copy())
            params[tn].copy_(a.T if transpose else a)


def torch_grads_as_tinyllm(tmodel: TorchGPT, config) -> dict:
    """{tinyllm name: NumPy gradient} from the twin's .grad (transposed back)."""
    params = dict(tmodel.named_parameters())
    out = {}
    for n, (tn, transpose) in name_map(config).items():
        g = params[tn].grad
        g = g.T if transpose else g
        out[n] = g.detach().cpu().numpy()
    return out


def make_optimizer(tmodel: TorchGPT, lr: float, weight_decay: float, betas, device: str):
    """AdamW with nanoGPT's groups: decay on 2-D+ parameters only."""
    decay = [p for p in tmodel.parameters() if p.dim() >= 2]
    no_decay = [p for p in tmodel.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    extra = {"fused": True} if device.startswith("cuda") else {}
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), eps=1e-8, **extra)

