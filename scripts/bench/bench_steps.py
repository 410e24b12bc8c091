"""The two training steps scripts/bench/bench.py times, the correctness gate, memory
probes and the generate() timing. tinyllm is used through its public API only;
torch is imported by the functions that need it."""
from __future__ import annotations

import gc
import os
import time

import tinyllm
from tinyllm.models import GPT, GPTConfig
from tinyllm.optim import AdamW, decay_groups

LR, WD, BETAS, CLIP = 1e-3, 0.1, (0.9, 0.99), 1.0


def gpt_config(c: dict, **over) -> GPTConfig:
    c = dict(c, **over)
    return GPTConfig(vocab_size=c["vocab"], block_size=c["block"], n_layer=c["n_layer"], n_head=c["n_head"],
                     n_embd=c["n_embd"], dropout=c["dropout"], bias=c["bias"], tie_weights=True)


def make_batches(c: dict, n: int, seed: int) -> list:
    """n (x, y) pairs of host int64 arrays (B, T): random tokens (speed does not depend on them)."""
    rng = tinyllm.device("cpu").rng(seed + 1)
    out = []
    for _ in range(n):
        w = rng.host_integers(0, c["vocab"], (c["batch"], c["block"] + 1))
        out.append((w[:, :-1].copy(), w[:, 1:].copy()))
    return out


class TinyRunner:
    """tinyllm's GPT + AdamW; step() times forward + backward + clip + AdamW, as the trainer runs them: the
    optimizer's flat clip (the norm stays on the device), not the per-tensor clip_grad_norm (a host read)."""

    def __init__(self, spec: dict, **over):
        self.backend = tinyllm.device(spec["device"], fallback=False)
        self.model = GPT(gpt_config(spec["config"], **over), device=self.backend, seed=spec["seed"])
        self.params = self.model.parameters()
        self.opt = AdamW(decay_groups(self.model, WD), lr=LR, betas=BETAS)
        self.last_loss = None

    def forward_backward(self, x, y):
        _, loss = self.model(x, y)
        self.opt.zero_grad()
        loss.backward()
        return loss

    def step(self, xh, yh) -> float:
        be = self.backend
        x, y = be.from_host(xh, "int64"), be.from_host(yh, "int64")  # batching: not timed
        be.synchronize()
        t0 = time.perf_counter()
        loss = self.forward_backward(x, y)
        self.opt.clip_grad_norm(CLIP)
        self.opt.step()
        be.synchronize()
        dt = time.perf_counter() - t0
        self.last_loss = loss.item()
        return dt

    def profile(self, batches, steps: int) -> list:
        """Per-op rows (ms per step) over `steps` steps."""
        from tinyllm.profile import profile

        be = self.backend
        with profile(sync=be.synchronize if be.kind == "cuda" else None) as prof:
            for i in range(steps):
                xh, yh = batches[i % len(batches)]
                x, y = be.from_host(xh, "int64"), be.from_host(yh, "int64")
                self.forward_backward(x, y)
                with prof.section("clip"):
                    self.opt.clip_grad_norm(CLIP)
                with prof.section("optimizer"):
                    self.opt.step()
        return merged_rows(prof.rows(steps), AS_MATMUL)


# a linear layer's work is its product (the bias goes in place): one "matmul" row, as PyTorch's addmm and mm are
AS_MATMUL = ("linear",)


def merged_rows(rows: list, names: tuple, into: str = "matmul") -> list:
    """rows with those of `names` added into the row `into` (calls, forward and backward ms), sorted again."""
    keep = {r["op"]: dict(r) for r in rows if r["op"] not in names}
    for r in rows:
        if r["op"] in names:
            t = keep.setdefault(into, {"op": into, "calls": 0, "fwd_ms": 0.0, "bwd_ms": 0.0})
            for k in ("calls", "fwd_ms", "bwd_ms"):
                t[k] += r[k]
    return sorted(keep.values(), key=lambda r: -(r["fwd_ms"] + r["bwd_ms"]))


# PyTorch's ops by the tinyllm op they do the work of (self CPU time; the rest is "other")
TORCH_OPS = {
    **dict.fromkeys(("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear"), "matmul"),
    **dict.fromkeys(("aten::gelu", "aten::gelu_backward"), "gelu"),
    **dict.fromkeys(("aten::_scaled_dot_product_flash_attention_for_cpu",
                     "aten::_scaled_dot_product_flash_attention_for_cpu_backward",
                     "aten::scaled_dot_product_attention"), "self_attention"),
    **dict.fromkeys(("aten::native_layer_norm", "aten::native_layer_norm_backward", "aten::layer_norm"), "layer_norm"),
    **dict.fromkeys(("aten::_log_softmax", "aten::_log_softmax_backward_data", "aten::nll_loss_forward",
                     "aten::nll_loss_backward", "aten::cross_entropy_loss"), "cross_entropy"),
    **dict.fromkeys(("aten::embedding", "aten::embedding_backward", "aten::embedding_dense_backward"), "embedding"),
}
REGIONS = ("[clip]", "[optimizer]")


def _region_of(ev):
    p = ev.cpu_parent
    while p is not None:
        if p.name in REGIONS:
            return p.name
        p = p.cpu_parent
    return None


class TorchRunner:
    """The PyTorch twin with tinyllm's initial weights; the same step."""

    def __init__(self, spec: dict, tiny_model):
        import torch

        from bench_torch_gpt import TorchGPT, copy_from_tinyllm, make_optimizer

        self.torch = torch
        self.device = "cuda" if spec["device"].startswith("cuda") else "cpu"
        if spec["device"].startswith("cuda:"):
            self.device = spec["device"]
        self.model = TorchGPT(tiny_model.config)
        copy_from_tinyllm(self.model, tiny_model)
        self.model.to(self.device).train()
        self.params = list(self.model.parameters())
        self.opt = make_optimizer(self.model, LR, WD, BETAS, self.device)
        self.last_loss = None

    def sync(self):
        if self.device != "cpu":
            self.torch.cuda.synchronize()

    def forward_backward(self, x, y):
        _, loss = self.model(x, y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        return loss

    def profile(self, batches, steps: int) -> dict:
        """ms per step by op category (TORCH_OPS), from torch.profiler's self CPU times."""
        from torch.profiler import ProfilerActivity, profile, record_function

        torch = self.torch
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for i in range(steps):
                xh, yh = batches[i % len(batches)]
                self.forward_backward(torch.from_numpy(xh).to(self.device), torch.from_numpy(yh).to(self.device))
                with record_function("[clip]"):
                    torch.nn.utils.clip_grad_norm_(self.params, CLIP)
                with record_function("[optimizer]"):
                    self.opt.step()
        totals: dict = {}
        for ev in prof.events():
            if ev.name in REGIONS:
                cat, us = ev.name, ev.cpu_time_total
            elif _region_of(ev) is None:
                cat, us = TORCH_OPS.get(ev.name, "other"), ev.self_cpu_time_total
            else:  # an op inside clip or the optimizer: counted in the region's time
                continue
            totals[cat] = totals.get(cat, 0.0) + us
        return {k: v / 1e3 / steps for k, v in totals.items()}

    def step(self, xh, yh) -> float:
        torch = self.torch
        x = torch.from_numpy(xh).to(self.device)  # batching: not timed
        y = torch.from_numpy(yh).to(self.device)
        self.sync()
        t0 = time.perf_counter()
        loss = self.forward_backward(x, y)
        torch.nn.utils.clip_grad_norm_(self.params, CLIP)
        self.opt.step()
        self.sync()
        dt = time.perf_counter() - t0
        self.last_loss = loss.item()
        return dt


def _rel(a, b) -> float:
    """max |a - b| / max |b| (a tensor-wise relative error that tiny entries cannot inflate)."""
    import numpy as np

    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    scale = float(np.max(np.abs(b))) if b.size else 0.0
    return float(np.max(np.abs(a - b))) / (scale if scale > 0 else 1.0)


def correctness_gate(spec: dict, rtol: float) -> dict:
    """Same weights, same batch: loss, every gradient, and the parameters after one
    clip + AdamW step must agree within rtol (float32, dropout off)."""
    from bench_torch_gpt import torch_grads_as_tinyllm

    tl = TinyRunner(spec, dropout=0.0)
    tr = TorchRunner(dict(spec), tl.model)
    (xh, yh), = make_batches(spec["config"], 1, spec["seed"] + 100)
    be = tl.backend
    loss_a = tl.forward_backward(be.from_host(xh, "int64"), be.from_host(yh, "int64")).item()
    torch = tr.torch
    loss_b = tr.forward_backward(torch.from_numpy(xh).to(tr.device), torch.from_numpy(yh).to(tr.device)).item()
    tgrads = torch_grads_as_tinyllm(tr.model, tl.model.config)
    worst, worst_name = 0.0, None
    for name, p in tl.model.named_parameters():
        e = _rel(p.grad if be.kind == "cpu" else be.to_host(p.grad), tgrads[name])
        if e > worst:
            worst, worst_name = e, name
    # the update, from the same gradients (a first Adam step is ~lr * sign(g): a gradient
    # near zero that differs in the 7th digit may flip it, so each side starts from tinyllm's)
    from bench_torch_gpt import name_map

    tparams = dict(tr.model.named_parameters())
    mapping = name_map(tl.model.config)
    with torch.no_grad():
        for name, p in tl.model.named_parameters():
            tn, transpose = mapping[name]
            g = torch.from_numpy(be.to_host(p.grad).copy())
            tparams[tn].grad = (g.T if transpose else g).contiguous().to(tr.device)
    tl.opt.clip_grad_norm(CLIP)
    tl.opt.step()
    torch.nn.utils.clip_grad_norm_(tr.params, CLIP)
    tr.opt.step()
    perr = 0.0
    for name, p in tl.model.named_parameters():
        tn, transpose = mapping[name]
        q = tparams[tn].detach()
        q = (q.T if transpose else q).cpu().numpy()
        perr = max(perr, _rel(p.numpy(), q))
    lerr = abs(loss_a - loss_b) / abs(loss_b)
    ok = lerr <= rtol and worst <= rtol and perr <= rtol
    return {"ok": ok, "rtol": rtol, "loss_tinyllm": loss_a, "loss_torch": loss_b, "loss_rel_err": lerr,
            "grad_rel_err": worst, "worst_grad": worst_name, "param_rel_err": perr}


# ----------------------------------------------------------------------------- memory
class _RSSProbe:
    """The rise of this process's resident set over a block (Linux: peak reset via clear_refs)."""

    def __init__(self):
        self.can_reset = os.path.exists("/proc/self/clear_refs")

    @staticmethod
    def _status(key: str) -> int:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
        return 0

    def start(self):
        gc.collect()
        self.rss0 = self._status("VmRSS")
        if self.can_reset:
            try:
                with open("/proc/self/clear_refs", "w") as f:
                    f.write("5")  # reset VmHWM to the current RSS
            except OSError:
                self.can_reset = False

    def stop(self) -> dict:
        if self.can_reset:
            peak = self._status("VmHWM")
        else:
            import resource

            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return {"kind": "rss", "rss_before": self.rss0, "peak_rss": peak, "step_bytes": max(0, peak - self.rss0),
                "peak_reset": self.can_reset}


class _CupyProbe:
    def __init__(self, cupy):
        self.pool = cupy.get_default_memory_pool()

    def start(self):
        gc.collect()
        self.pool.free_all_blocks()
        self.before = self.pool.total_bytes()

    def stop(self) -> dict:
        total = self.pool.total_bytes()  # the pool only grows: its size is the high-water mark
        return {"kind": "cupy pool", "step_bytes": total - self.before, "pool_bytes": total}


class _TorchCudaProbe:
    def __init__(self, torch):
        self.torch = torch

    def start(self):
        gc.collect()
        self.torch.cuda.empty_cache()
        self.torch.cuda.reset_peak_memory_stats()
        self.before = self.torch.cuda.memory_reserved()

    def stop(self) -> dict:
        peak = self.torch.cuda.max_memory_reserved()
        return {"kind": "torch reserved", "step_bytes": peak - self.before, "peak_reserved": peak}


def memory_probe(runner):
    if isinstance(runner, TinyRunner):
        if runner.backend.kind == "cuda":
            from backends.cuda.backend import cupy_modules

            cupy, _ = cupy_modules()  # the simulated CuPy (TINYLLM_CUDA_SIM) has no pool: its arrays are host memory
            if hasattr(cupy, "get_default_memory_pool"):
                return _CupyProbe(cupy)
        return _RSSProbe()
    return _TorchCudaProbe(runner.torch) if runner.device != "cpu" else _RSSProbe()


# ----------------------------------------------------------------------------- sampling
class _NoCache:
    """The model without new_cache(): generate() then recomputes the whole context each token."""

    def __init__(self, model):
        self.model = model
        self.config = model.config
        self.backend = model.backend

    @property
    def training(self):
        return self.model.training

    def train(self, mode=True):
        self.model.train(mode)
        return self

    def eval(self):
        self.model.eval()
        return self

    def __call__(self, idx, cache=None, pos=0):
        return self.model(idx, pos=pos)


def time_generate(spec: dict) -> dict:
    """tokens/s of generate() for `tokens` new tokens, with the KV cache and without.

    block_size is raised to hold prompt + tokens, so the cache is never reset."""
    from tinyllm.sample import generate

    n = spec["tokens"]
    block = max(spec["config"]["block"], n + 1)
    be = tinyllm.device(spec["device"], fallback=False)
    model = GPT(gpt_config(spec["config"], block=block, dropout=0.0), device=be, seed=spec["seed"])
    res = {"tokens": n, "block_size": block, "threads": spec["threads"]}
    outs = {}
    for name, m in (("cache", model), ("nocache", _NoCache(model))):
        generate(m, [0], max_new_tokens=min(n, 20), temperature=1.0, seed=1)  # warm-up
        be.synchronize()
        t0 = time.perf_counter()
        outs[name] = generate(m, [0], max_new_tokens=n, temperature=1.0, seed=1)
        be.synchronize()
        dt = time.perf_counter() - t0
        res[f"{name}_s"] = dt
        res[f"{name}_tok_s"] = len(outs[name]) / dt
    res["same_tokens"] = outs["cache"] == outs["nocache"]
    return res
