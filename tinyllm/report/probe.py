"""What the report computes from the run's model, on the CPU at report time: the attention maps of a short
validation passage, each token's loss on a longer one (with the top-5 predictions), the dataset's own
examples. Training never runs this code: its speed is untouched."""
from __future__ import annotations

import math

from ..autograd import no_grad
from ..data import load_dataset
from ..errors import TinyLLMError
from ..ops.activation import softmax_data
from ..ops.attention import causal_mask
from ..sample import sample_lines

ATTENTION_TOKENS = 24   # the attention passage: short, so each map stays readable
SURPRISE_TOKENS = 256   # the surprise passage: up to this many tokens (and the model's block size)


def validation_ids(meta: dict, tokenizer) -> tuple:
    """(the validation token ids, the dataset's training lines or None) of the run's data, read with the
    checkpoint's own tokenizer; raises TinyLLMError (or OSError) where the data cannot be read now."""
    data = meta.get("data") or {}
    spec = data.get("spec") or (meta.get("train") or {}).get("data") or "names"
    ds = load_dataset(spec, seed=0, lines=data.get("lines"), tokenizer=lambda texts, lines: tokenizer)
    return [int(i) for i in ds.val[:SURPRISE_TOKENS + 1]], ds


def token_text(tokenizer, i: int) -> str:
    """How one token shows on an axis or in a passage."""
    if i == tokenizer.bos_id:
        return "⏎"
    t = tokenizer.decode([i])
    return t.replace("\n", "⏎") if t.strip() or t == " " else repr(t)[1:-1] or "·"


def attention_maps(model, ids: list) -> list:
    """[layer][head] -> rows of attention probabilities (query i over keys 0..T-1) for one passage, recomputed
    from each block's qkv projection exactly as the block's attention does (softmax(q k^T / sqrt(hs)))."""
    be = model.wte.weight.backend
    xp = be.xp
    maps = []
    with no_grad(), be.activate():
        x = _embed(model, ids)
        for block in model.blocks:
            qkv = block.attn.qkv(block.ln1(x)).data  # (1, T, 3C)
            _, t, c3 = qkv.shape
            nh = block.attn.n_head
            hs = c3 // 3 // nh
            parts = xp.reshape(qkv, (1, t, 3, nh, hs))
            q, k = (xp.permute_dims(parts[:, :, i, :, :], (0, 2, 1, 3)) for i in range(2))
            s = (q @ xp.matrix_transpose(k)) * (1.0 / math.sqrt(hs))
            s = xp.where(causal_mask(be, t, t), s, -math.inf)
            maps.append(be.to_host(softmax_data(xp, s)[0]).tolist())  # (nh, T, T)
            x = block(x)
    return maps


def _embed(model, ids: list):
    """The GPT's input to its first block for one passage (token + position embeddings)."""
    be = model.wte.weight.backend
    xp = be.xp
    i = xp.asarray([ids], dtype=xp.int64, device=be.device)
    pos = xp.arange(0, len(ids), dtype=xp.int64, device=be.device)
    return model.wte(i) + model.wpe(pos)


def surprise(model, ids: list, k: int = 5) -> list:
    """For each next token of a passage: (loss in nats, [(token id, probability)] of the k most likely)."""
    be = model.wte.weight.backend if hasattr(model, "wte") else model.parameters()[0].backend
    xp = be.xp
    x, y = ids[:-1], ids[1:]
    with no_grad(), be.activate():
        logits = model(xp.asarray([x], dtype=xp.int64, device=be.device))[0].data[0]  # (T, V)
        z = logits - xp.max(logits, axis=-1, keepdims=True)
        logp = z - xp.log(xp.sum(xp.exp(z), axis=-1, keepdims=True))
        order = xp.argsort(-logp, axis=-1)[:, :k]
        top = xp.take_along_axis(logp, order, axis=-1)
        picked = xp.take_along_axis(logp, xp.asarray([[t] for t in y], dtype=xp.int64, device=be.device), axis=-1)
        order, top, picked = (be.to_host(a).tolist() for a in (order, top, picked))
    return [(-picked[t][0], [(order[t][j], math.exp(top[t][j])) for j in range(k)]) for t in range(len(y))]


def dataset_examples(model, tokenizer, meta: dict, ds) -> dict | None:
    """Line data (names): samples, each marked new or copied from the training lines; arithmetic: held-out
    problems answered greedily, right or wrong. None for text data."""
    val_lines = getattr(ds, "val_lines", None)
    if tokenizer.bos_id is None or not val_lines:
        return None
    spec = (meta.get("data") or {}).get("spec")
    try:
        if spec == "arithmetic":
            rows = []
            for line in val_lines[:20]:
                prompt, answer = line.rsplit(" equals ", 1)
                got = sample_lines(model, tokenizer, 1, None, 0.0, prompt=prompt + " equals")[0]
                said = got[len(prompt + " equals"):].strip()
                rows.append((prompt + " equals", answer, said, said == answer))
            return {"kind": "arithmetic", "rows": rows}
        seen = set(getattr(ds, "train_lines", None) or ())
        samples = sample_lines(model, tokenizer, 20, None, 1.0, seed=1)
        return {"kind": "lines", "rows": [(s, s in seen) for s in samples]}
    except (TinyLLMError, ValueError):
        return None
