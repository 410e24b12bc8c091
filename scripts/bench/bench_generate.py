"""Greedy generation speed on a GPT-2-124M-shaped model: tinyllm's KV-cache decoder vs transformers' generate.

    python scripts/bench/bench_generate.py                      # 1 thread, 124M shape, prompt 16, 50 new tokens
    python scripts/bench/bench_generate.py --threads 2 --json

One random GPT-2 small (12 layers, 12 heads, 768 wide, vocab 50257, block 1024)
is drawn in tinyllm, exported with `tinyllm.gpt2.export_model`, and loaded
by transformers' GPT2LMHeadModel.from_pretrained: the same weights on both
sides. A gate first checks that both produce the same greedy tokens. Then the
two decoders alternate (A, B, A, B, ...), each generating --new-tokens tokens
after the same --prompt-len prompt with its KV cache, batch 1, float32. The
table reports the median tokens/s (new tokens / wall time of the whole call,
prefill included) and the ratio. Threads: OMP/OpenBLAS/MKL variables are set
before NumPy loads, and torch.set_num_threads; with one thread both run in
this one process.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time

GPT2_124M = dict(vocab_size=50257, block_size=1024, n_layer=12, n_head=12, n_embd=768)
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--prompt-len", type=int, default=16)
    p.add_argument("--new-tokens", type=int, default=50)
    p.add_argument("--rounds", type=int, default=7, help="timed A,B pairs (after one warm-up pair)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--small", action="store_true", help="a 2-layer 64-wide model (a quick check of the script)")
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    if min(a.threads, a.prompt_len, a.new_tokens, a.rounds) < 1:
        p.error("--threads, --prompt-len, --new-tokens and --rounds must be positive")
    return a


def cpu_model() -> str:
    from backends.cpu.info import cpu_info

    model, _ = cpu_info()
    if model:
        return model
    return platform.processor() or "unknown"


def blas_info() -> list:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return ["threadpoolctl not installed"]
    return [f"{i.get('internal_api')} {i.get('version')} ({i.get('prefix')}, {i.get('num_threads')} threads)"
            for i in threadpool_info() if i.get("user_api") == "blas"]


def main(argv=None) -> int:
    a = parse_args(argv)
    for k in THREAD_VARS:  # before NumPy (and its BLAS) is imported
        os.environ[k] = str(a.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import numpy as np

    try:
        import torch
        from transformers import GPT2LMHeadModel
    except ImportError as e:
        print(f"bench_generate: needs torch and transformers as the reference ({e}): "
              f"pip install torch transformers", file=sys.stderr)
        return 2
    torch.set_num_threads(a.threads)
    from tinyllm.gpt2 import export_model
    from tinyllm.models import GPT, GPTConfig
    from tinyllm.sample import generate_batch

    shape = dict(GPT2_124M, n_layer=2, n_embd=64, n_head=2) if a.small else GPT2_124M
    if a.prompt_len + a.new_tokens > shape["block_size"]:
        print("bench_generate: --prompt-len + --new-tokens exceed the block size 1024", file=sys.stderr)
        return 2
    model = GPT(GPTConfig(**shape), device="cpu", seed=a.seed)
    with tempfile.TemporaryDirectory() as d:
        export_model(model, None, os.path.join(d, "hf"))
        hf = GPT2LMHeadModel.from_pretrained(os.path.join(d, "hf")).eval()
    prompt = np.random.default_rng(a.seed).integers(0, shape["vocab_size"], a.prompt_len).tolist()

    def tinyllm_run():
        return generate_batch(model, prompt, max_new_tokens=a.new_tokens, temperature=0.0)[0]

    def hf_run():
        with torch.no_grad():
            out = hf.generate(torch.tensor([prompt]), max_new_tokens=a.new_tokens, min_new_tokens=a.new_tokens,
                              do_sample=False, use_cache=True, eos_token_id=None, pad_token_id=0)
        return out[0, a.prompt_len:].tolist()

    same = tinyllm_run() == hf_run()  # the gate, and the warm-up pair
    times = {"tinyllm": [], "transformers": []}
    for _ in range(a.rounds):
        for name, fn in (("tinyllm", tinyllm_run), ("transformers", hf_run)):
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    res = {"script": "bench_generate", "cpu": cpu_model(), "blas": blas_info(), "threads": a.threads,
           "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
           "env": {k: os.environ.get(k) for k in THREAD_VARS}, "shape": shape,
           "parameters": model.num_parameters(), "prompt_len": a.prompt_len, "new_tokens": a.new_tokens,
           "rounds": a.rounds, "same_greedy_tokens": same}
    for name, ts in times.items():
        med = statistics.median(ts)
        res[name] = {"s_median": med, "tok_s_median": a.new_tokens / med, "s_min": min(ts), "s_max": max(ts)}
    res["ratio_tok_s"] = res["tinyllm"]["tok_s_median"] / res["transformers"]["tok_s_median"]
    if a.json:
        print(json.dumps(res, indent=1))
    else:
        print(f"cpu: {res['cpu']} | BLAS: {'; '.join(res['blas'])} | torch {res['torch']} "
              f"({res['torch_threads']} threads) | {THREAD_VARS[0]}={a.threads}")
        print(f"model: GPT-2 shape {shape}, {res['parameters'] / 1e6:.1f}M parameters, float32, batch 1")
        print(f"greedy, prompt {a.prompt_len} tokens + {a.new_tokens} new, KV cache, {a.rounds} rounds A,B alternating; "
              f"same greedy tokens: {same}")
        for name in times:
            r = res[name]
            print(f"  {name:>12}: {r['tok_s_median']:7.1f} tok/s median ({r['s_median'] * 1e3:.0f} ms per call; "
                  f"min {r['s_min'] * 1e3:.0f}, max {r['s_max'] * 1e3:.0f})")
        print(f"  ratio tinyllm / transformers: {res['ratio_tok_s']:.2f}x tokens/s")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
