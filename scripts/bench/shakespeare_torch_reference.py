"""nanoGPT's tiny-Shakespeare CPU recipe in plain PyTorch, for reference.

Its own initialisation (nanoGPT's: normal 0.02, residual projections
0.02/sqrt(2 n_layer)) and its own torch.randint batches, seed by seed, so the
spread of the recipe's val loss can be compared with tinyllm's
(scripts/tutorials/shakespeare.py) measured the same way: 200 val batches at step 2000.
PyTorch is only needed here (pip install torch); never by the library.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(os.path.dirname(HERE), "tutorials")]  # find_data: the recipe's own, one copy
from bench_torch_gpt import TorchGPT, make_optimizer  # noqa: E402
from shakespeare import find_data  # noqa: E402

from tinyllm.models import GPTConfig  # noqa: E402


def nanogpt_init(model: TorchGPT, n_layer: int) -> None:
    for name, p in model.named_parameters():
        if p.dim() >= 2:
            std = 0.02 / math.sqrt(2 * n_layer) if name.endswith("proj.weight") else 0.02
            torch.nn.init.normal_(p, 0.0, std)


def run(seed: int, text: str, steps: int, val_batches: int) -> dict:
    torch.manual_seed(seed)
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    data = torch.tensor([stoi[c] for c in text], dtype=torch.long)
    n = int(0.9 * len(data))
    train, val = data[:n], data[n:]
    B, T = 12, 64
    cfg = GPTConfig(vocab_size=len(chars), block_size=T, n_layer=4, n_head=4, n_embd=128, dropout=0.0, bias=False)
    model = TorchGPT(cfg)
    nanogpt_init(model, cfg.n_layer)
    opt = make_optimizer(model, 1e-3, 0.1, (0.9, 0.99), "cpu")

    def batch(split):
        d = train if split == "train" else val
        ix = torch.randint(len(d) - T, (B,))
        return torch.stack([d[i:i + T] for i in ix]), torch.stack([d[i + 1:i + 1 + T] for i in ix])

    def lr_at(it):  # nanoGPT's get_lr
        if it < 100:
            return 1e-3 * (it + 1) / 101
        ratio = (it - 100) / (steps - 100)
        return 1e-4 + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (1e-3 - 1e-4)

    t0 = time.perf_counter()
    for it in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(it)
        x, y = batch("train")
        _, loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    ms = 1000 * (time.perf_counter() - t0) / steps
    model.eval()
    with torch.no_grad():
        vals = [model(*batch("val"))[1].item() for _ in range(val_batches)]
    return {"seed": seed, "val_loss": round(sum(vals) / len(vals), 4), "ms_per_step": round(ms, 1)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=None)
    p.add_argument("--seeds", default="1337", help="comma-separated seeds")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--val-batches", type=int, default=200)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    with open(args.data or find_data(), encoding="utf-8") as f:
        text = f.read()
    results = []
    for s in (int(x) for x in args.seeds.split(",")):
        r = run(s, text, args.steps, args.val_batches)
        results.append(r)
        print(f"seed {r['seed']}: val {r['val_loss']:.4f} over {args.val_batches} batches | {r['ms_per_step']} ms/step",
              flush=True)
    print(json.dumps({"script": "shakespeare_torch_reference", "threads": args.threads, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
