"""Side-by-side benchmark: the same GPT training step in tinyllm and in PyTorch.

    python scripts/bench/bench.py                      # cpu-small, 1 thread and all cores
    python scripts/bench/bench.py --preset gpu-baby --device cuda
    python scripts/bench/bench.py --preset gpt2        # GPT-2 small (124M), batch 4 x 256: 5 steps, ~3 s each
    python scripts/bench/bench.py --device torch       # tinyllm on torch's tensors vs on NumPy vs PyTorch
    python scripts/bench/bench.py --preset sweep       # step time and memory vs width and context (+ plot)
    python scripts/bench/bench.py --preset sweep-context --threads 1   # context 32 .. 1024 only
    python scripts/bench/bench.py --busy-core          # the same with one core kept busy (`yes`)
    python scripts/bench/bench.py --json               # machine-readable

Both frameworks get the same config, the same batches and the same initial
weights (tinyllm's, copied into the PyTorch twin of scripts/bench/bench_torch_gpt.py).
A correctness gate runs first: on one batch the loss and every gradient must
agree to 1e-4 relative error (max |a - b| / max |b| per tensor), and so must
the parameters after clip + AdamW applied to the same gradients.
Then the two steps alternate (A, B, A, B, ...) so machine noise hits both
alike; a step is forward + backward + clip + AdamW (batching excluded), and
the table reports the median. Every thread setting runs in its own process,
because OpenBLAS reads OMP_NUM_THREADS / OPENBLAS_NUM_THREADS when NumPy is
imported. Peak memory is measured in separate processes, one per framework:
the rise of the resident set (CPU) or of the allocator (CUDA) over the
training steps, i.e. weights' gradients, optimizer state and activations,
without the libraries themselves. A per-op profile of tinyllm's step
(tinyllm.profile) shows where the time goes, and generate() is timed with
and without the KV cache. torch is optional: without it tinyllm runs alone.

The report starts with the machine: CPU model and vector extensions, and the
BLAS NumPy runs (library, version, kernel architecture, threading layer, as
threadpoolctl reports them), because the ratio depends on them. tinyllm's
thread policy (backends/cpu/threads.py) may use fewer threads than allowed when
other processes keep cores busy; the threads it had at the end are reported.
Every worker turns on the allocator tuning a training program uses
(backends.tune_malloc), as `tinyllm train` does.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys

from backends.cpu.threads import cpu_ticks, steal_between
from tinyllm.errors import TinyLLMError, UsageError

HERE = os.path.dirname(os.path.abspath(__file__))
MARK = "@@BENCH "  # a worker's result line on stdout

PRESETS = {
    # nanoGPT's CPU recipe for tiny Shakespeare
    "cpu-small": dict(batch=12, block=64, n_layer=4, n_head=4, n_embd=128, vocab=65, dropout=0.0, bias=False),
    # nanoGPT's shakespeare_char GPU recipe ("baby GPT")
    "gpu-baby": dict(batch=64, block=256, n_layer=6, n_head=6, n_embd=384, vocab=65, dropout=0.2, bias=False),
    # GPT-2 small (124M: 12 layers, 12 heads, 768 wide, GPT-2's vocabulary, head tied to the embedding)
    # at a laptop fine-tuning batch
    "gpt2": dict(batch=4, block=256, n_layer=12, n_head=12, n_embd=768, vocab=50257, dropout=0.0, bias=True),
}
# fewer steps where one is seconds long (--steps, --warmup, ... still override them)
PRESET_RUNS = {"gpt2": dict(steps=5, warmup=1, profile_steps=2, mem_steps=2, sample_tokens=20, rounds=1)}
RUN_DEFAULTS = dict(profile_steps=10, mem_steps=5, sample_tokens=500, rounds=3)
SWEEP_BASE = dict(batch=12, block=64, n_layer=4, n_head=4, n_embd=128, vocab=65, dropout=0.0, bias=False)
SWEEP_EMBD = (64, 128, 256, 512)             # at block 64
SWEEP_BLOCK = (32, 64, 128, 256, 512, 1024)  # at n_embd 128
SWEEPS = ("sweep", "sweep-width", "sweep-context")
GATE_RTOL = 1e-4


# ----------------------------------------------------------------------------- parent
def parse_args(argv):
    p = argparse.ArgumentParser(description="tinyllm vs PyTorch: one GPT training step, side by side")
    p.add_argument("--preset", default="cpu-small", choices=[*PRESETS, *SWEEPS])
    p.add_argument("--device", default="cpu", help="cpu or cuda (cuda:N); both frameworks use it. torch: tinyllm "
                   "on torch's CPU tensors, beside tinyllm on NumPy and PyTorch (CPU) in the same run")
    p.add_argument("--steps", type=int, default=None, help="timed steps per framework (default 50; sweep 10; gpt2 5)")
    p.add_argument("--warmup", type=int, default=None,
                   help="untimed steps first, at least 1 (default 10; sweep 3; gpt2 1)")
    p.add_argument("--threads", default=None,
                   help="comma-separated thread counts, each run in its own process (default: 1 and all cores)")
    for f in ("batch", "block", "n_layer", "n_head", "n_embd", "vocab"):
        p.add_argument(f"--{f.replace('_', '-')}", type=int, default=None, help=f"override the preset's {f}")
    p.add_argument("--dropout", type=float, default=None, help="override the preset's dropout")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-torch", action="store_true", help="time tinyllm alone")
    p.add_argument("--profile-steps", type=int, default=None, help="steps in the per-op profile (0: none)")
    p.add_argument("--mem-steps", type=int, default=None, help="steps in each memory process (0: no memory figures)")
    p.add_argument("--sample-tokens", type=int, default=None, help="tokens for the generate() timing (0: none)")
    p.add_argument("--plot", default="bench_sweep.png", help="where the sweep plot goes (needs matplotlib)")
    p.add_argument("--rounds", type=int, default=None,
                   help="with several CPU threads: rounds of separate-process timing, A,B,A,B (0: in-process only)")
    p.add_argument("--busy-core", action="store_true",
                   help="keep one core busy with `yes` for the whole run (contention as on a shared machine)")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.add_argument("--_worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--_spec", default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    sweep = a.preset in SWEEPS
    for k, v in (RUN_DEFAULTS | PRESET_RUNS.get(a.preset, {})).items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    a.steps = a.steps if a.steps is not None else (10 if sweep else 50)
    a.warmup = a.warmup if a.warmup is not None else (3 if sweep else 10)
    if a.steps < 1 or a.warmup < 1:  # the first step compiles (CUDA kernels, numba loops) and allocates
        raise UsageError(f"--steps and --warmup must be >= 1: the first step compiles and allocates, and is "
                         f"never timed (got --steps {a.steps}, --warmup {a.warmup})")
    if a.threads is None:
        n = os.cpu_count() or 1
        a.threads = [1] if n == 1 else [1, n]
    else:
        try:
            a.threads = [int(t) for t in a.threads.split(",") if t.strip()]
        except ValueError:
            raise UsageError(f"--threads takes comma-separated positive integers, e.g. 1,2 (got {a.threads!r})")
        if not a.threads or min(a.threads) < 1:
            raise UsageError("--threads takes positive integers, e.g. --threads 1,2")
    if not (a.device in ("cpu", "torch") or a.device.startswith("cuda")):
        raise UsageError(f"--device must be cpu, torch or cuda[:N], got {a.device!r}")
    return a


def configs(a) -> list:
    """The model/batch configs to time: one for a preset, several for the sweep."""
    if a.preset in SWEEPS:
        width = [dict(SWEEP_BASE, n_embd=e) for e in SWEEP_EMBD]
        context = [dict(SWEEP_BASE, block=t) for t in SWEEP_BLOCK]
        pts = {"sweep-width": width, "sweep-context": context,
               "sweep": width + [c for c in context if c["block"] != SWEEP_BASE["block"]]}[a.preset]
    else:
        pts = [dict(PRESETS[a.preset])]
    for c in pts:
        for f in ("batch", "block", "n_layer", "n_head", "n_embd", "vocab", "dropout"):
            v = getattr(a, f)
            if v is not None:
                c[f] = v
        if c["n_embd"] % c["n_head"]:
            raise UsageError(f"n_embd {c['n_embd']} is not divisible by n_head {c['n_head']}")
        if min(c["batch"], c["block"], c["n_layer"], c["n_head"], c["n_embd"], c["vocab"]) < 1:
            raise UsageError("batch, block, n_layer, n_head, n_embd and vocab must be positive")
    return pts


def thread_env(n: int) -> dict:
    env = dict(os.environ)
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        env[k] = str(n)
    return env


def run_worker(kind: str, spec: dict, threads: int) -> dict:
    """Run one measurement in a fresh process with its thread settings; its result dict."""
    cmd = [sys.executable, os.path.abspath(__file__), "--_worker", kind, "--_spec", json.dumps(spec)]
    proc = subprocess.run(cmd, env=thread_env(threads), capture_output=True, text=True)
    if proc.returncode == 2:  # the worker found bad input (e.g. --device cuda without a GPU)
        last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "bad input"
        raise UsageError(last.removeprefix("error: "))
    for line in proc.stdout.splitlines():
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    raise RuntimeError(f"bench worker {kind} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")


def main(argv=None) -> int:
    try:
        a = parse_args(argv)
        if a._worker:
            return worker(a._worker, json.loads(a._spec))
        pts = configs(a)
        with busy_core(a.busy_core):
            return run_all(a, pts)
    except TinyLLMError as e:
        print(e.line(), file=sys.stderr)
        return e.exit_code


@contextlib.contextmanager
def busy_core(on: bool):
    """Keep one core busy with `yes > /dev/null` inside the block (killed after)."""
    if not on:
        yield
        return
    cmd = [shutil.which("yes")] if shutil.which("yes") else [sys.executable, "-c", "while True: pass"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    try:
        yield
    finally:
        proc.kill()
        proc.wait()


def run_all(a, pts) -> int:
    sweep = a.preset in SWEEPS
    base = dict(device=a.device, steps=a.steps, warmup=a.warmup, seed=a.seed, torch=not a.no_torch)
    report = {"preset": a.preset, "device": a.device, "steps": a.steps, "warmup": a.warmup,
              "busy_core": a.busy_core, "runs": []}
    ticks = cpu_ticks()  # host steal over the whole run: shared VMs lose cores to other guests unseen
    for n in a.threads:
        for i, c in enumerate(pts):
            spec = dict(base, config=c, threads=n, profile_steps=0 if sweep else a.profile_steps)
            run = run_worker("time", spec, n)
            if n > 1 and run.get("torch") and a.device == "cpu" and a.rounds > 0:
                separate_processes(run, spec, n, a.rounds)
            if a.mem_steps > 0:
                mspec = dict(spec, steps=a.mem_steps)
                run["tinyllm"]["memory"] = run_worker("mem-tinyllm", mspec, n)
                if run.get("torch"):
                    run["torch"]["memory"] = run_worker("mem-torch", mspec, n)
                    t, r = run["tinyllm"]["memory"]["step_bytes"], run["torch"]["memory"]["step_bytes"]
                    run["memory_ratio"] = t / r if r else None
                    run["memory_steps"] = a.mem_steps
            report["runs"].append(run)
            if not a.json:
                print(f"  done: threads {n}, config {i + 1}/{len(pts)}", file=sys.stderr, flush=True)
    if a.sample_tokens > 0 and not sweep:
        spec = dict(base, config=pts[0], tokens=a.sample_tokens, threads=a.threads[-1])
        report["sampling"] = run_worker("sample", spec, a.threads[-1])
    if sweep:
        report["plot"] = plot_sweep(report, a.plot)
    report["gate_ok"] = all(r["gate"]["ok"] for r in report["runs"] if r.get("gate"))
    report["host_steal"] = steal_between(ticks, cpu_ticks())
    if a.json:
        print(json.dumps(report, indent=1))
    else:
        print(render(report))
    return 0 if report["gate_ok"] else 1


def separate_processes(run: dict, spec: dict, n: int, rounds: int) -> None:
    """Re-time each framework alone in its own process, alternating A, B, A, B.

    With several threads in one process, OpenBLAS's and PyTorch's idle worker
    threads spin and steal cores from each other, so the in-process figures
    are kept under run["in_process"] and these become the reported ones.
    """
    times = {"tinyllm": [], "torch": []}
    for _ in range(rounds):
        for fw in times:
            times[fw] += run_worker("time", dict(spec, only=fw, profile_steps=0), n)["times"]
    run["in_process"] = {fw: run[fw]["ms_median"] for fw in times} | {"ratio": run["ratio"]}
    tokens = spec["config"]["batch"] * spec["config"]["block"]
    for fw, ts in times.items():
        run[fw].update(_summary(ts, tokens))
    run["ratio"] = run["tinyllm"]["ms_median"] / run["torch"]["ms_median"]
    run["timing"] = f"separate processes, {rounds} rounds"


# ----------------------------------------------------------------------------- rendering
def _mb(b):
    return f"{b / 2**20:.1f}" if b is not None else "-"


def render(rep: dict) -> str:
    from tinyllm.profile import format_table  # after the thread settings: render runs in the parent only

    out = []
    r0 = rep["runs"][0]
    tv = r0.get("torch_version")
    out.append(f"tinyllm vs {'PyTorch ' + tv if tv else '(no PyTorch)'} | preset {rep['preset']} | device "
               f"{rep['device']} | median of {rep['steps']} steps after {rep['warmup']} warm-up, alternating A,B")
    m = r0.get("machine")
    if m:
        out.append(f"machine: {m['cpu']} ({m['cpus']} CPUs; {m['vector'] or 'no AVX'}) | NumPy {m['numpy']} | BLAS "
                   + "; ".join(f"{b['internal_api']} {b['version']} ({b['architecture']} kernels, {b['threading_layer']})"
                               for b in m["blas"] if b["used"])
                   + (f" | MKL not used: {m['mkl_not_used']}" if m.get("mkl_not_used") else "")
                   + (" | one core kept busy by `yes`" if rep.get("busy_core") else ""))
    steal = rep.get("host_steal")
    if steal is not None:
        out.append(f"host steal during the run: {100 * steal:.1f}% of the machine's CPU time went to other guests"
                   + (" (above ~2%: expect noisy figures, run again)" if steal > 0.02 else ""))
    if rep["preset"] not in SWEEPS:
        c = r0["config"]
        out.append(f"config: batch {c['batch']}, block {c['block']}, {c['n_layer']} layers, {c['n_head']} heads, "
                   f"{c['n_embd']} embd, vocab {c['vocab']}, dropout {c['dropout']}, bias {c['bias']}, tied embeddings")
    out.append(f"tinyllm fast path: {r0['fast_path']}; allocator tuning "
               f"{'on' if r0.get('malloc_tuned') else 'off'}; threads tinyllm used at the end of each timing run "
               "(thread policy): " + ", ".join(f"{r['threads']} allowed -> {r['policy']}" for r in rep["runs"] if "policy" in r))
    hdr = (f"{'threads':>7} {'OMP/OPENBLAS/torch':>18} {'block':>5} {'embd':>4} | {'tinyllm ms':>10} {'tok/s':>8} | "
           f"{'torch ms':>8} {'tok/s':>8} | {'ratio':>5} | {'mem MB tl/torch':>15} {'ratio':>5}")
    out.append(hdr)
    out.append("-" * len(hdr))
    for r in rep["runs"]:
        tl, tr, c = r["tinyllm"], r.get("torch"), r["config"]
        th = f"{r['env']['OMP_NUM_THREADS']}/{r['env']['OPENBLAS_NUM_THREADS']}/{r.get('torch_threads', '-')}"
        mem = "-"
        mr = "-"
        if "memory" in tl:
            mem = f"{_mb(tl['memory']['step_bytes'])}/{_mb(tr['memory']['step_bytes']) if tr and 'memory' in tr else '-'}"
            mr = f"{r['memory_ratio']:.2f}" if r.get("memory_ratio") else "-"
        tms = f"{tr['ms_median']:>8.2f} {tr['tokens_per_s']:>8.0f}" if tr else f"{'-':>8} {'-':>8}"
        ratio = f"{r['ratio']:>5.2f}" if r.get("ratio") else f"{'-':>5}"
        out.append(f"{r['threads']:>7} {th:>18} {c['block']:>5} {c['n_embd']:>4} | {tl['ms_median']:>10.2f} "
                   f"{tl['tokens_per_s']:>8.0f} | {tms} | {ratio} | {mem:>15} {mr:>5}")
    out.append("ratio = tinyllm / PyTorch median ms per step (lower is better for tinyllm); memory = the rise in "
               "resident memory (CPU) or allocator bytes (CUDA) over the training steps")
    if any(r.get("memory_steps") == 1 for r in rep["runs"]):  # GPT-2 small, 2 threads: 1.50x over 1 step, 0.97x over 2
        out.append("memory over 1 step: PyTorch makes Adam's state after that step's peak, so its figure leaves the "
                   "state out and the ratio is too high; compare with --mem-steps 2 or more")
    for r in rep["runs"]:
        if r.get("numpy"):
            out.append(f"threads {r['threads']}: tinyllm on torch's tensors {r['tinyllm']['ms_median']:.2f} ms, on "
                       f"NumPy {r['numpy']['ms_median']:.2f} ms: ratio {r['vs_numpy']:.2f} (torch / NumPy; the same "
                       f"steps, alternating in one process)")
    for r in rep["runs"]:
        if r.get("in_process"):
            ip = r["in_process"]
            out.append(f"threads {r['threads']}: timed in {r['timing']} (each framework alone, alternating A,B), because "
                       f"in one process the two thread pools spin against each other (in-process: tinyllm "
                       f"{ip['tinyllm']:.1f} ms, PyTorch {ip['torch']:.1f} ms, ratio {ip['ratio']:.2f})")
    for r in rep["runs"]:
        g = r.get("gate")
        if g:
            out.append(f"gate (threads {r['threads']}, block {r['config']['block']}, embd {r['config']['n_embd']}): "
                       f"{'ok' if g['ok'] else 'FAILED'} - loss rel err {g['loss_rel_err']:.1e}, worst grad rel err "
                       f"{g['grad_rel_err']:.1e} ({g['worst_grad']}), params after clip + AdamW from the same grads {g['param_rel_err']:.1e}"
                       f" (tolerance {g['rtol']:.0e})")
    for r in rep["runs"]:
        if r.get("profile"):
            out.append(f"\nper-op profile of one tinyllm step (threads {r['threads']}, mean of "
                       f"{r['profile_steps']} steps; exclusive times, ms)"
                       + (", and PyTorch's step by the same ops (torch.profiler self CPU times):"
                          if r.get("torch_profile") else ":"))
            out.append(format_table(r["profile"], indent="  ", other=r.get("torch_profile")))
    s = rep.get("sampling")
    if s:
        out.append(f"\ngenerate() {s['tokens']} new tokens (model as above with block_size {s['block_size']}, "
                   f"threads {s['threads']}): KV cache {s['cache_tok_s']:.0f} tok/s, no cache {s['nocache_tok_s']:.0f}"
                   f" tok/s ({s['cache_tok_s'] / s['nocache_tok_s']:.1f}x)")
    if rep.get("plot"):
        out.append(f"\nsweep plot: {rep['plot']}")
    return "\n".join(out)


def plot_sweep(rep: dict, path: str):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, fixed, label in ((axes[0], "n_embd", ("block", SWEEP_BASE["block"]), "n_embd"),
                                  (axes[1], "block", ("n_embd", SWEEP_BASE["n_embd"]), "block (context T)")):
        for n in sorted({r["threads"] for r in rep["runs"]}):
            runs = sorted((r for r in rep["runs"] if r["threads"] == n and r["config"][fixed[0]] == fixed[1]),
                          key=lambda r: r["config"][key])
            if len(runs) < 2:
                continue
            xs = [r["config"][key] for r in runs]
            ax.plot(xs, [r["tinyllm"]["ms_median"] for r in runs], "o-", label=f"tinyllm, {n} thr")
            if all(r.get("torch") for r in runs):
                ax.plot(xs, [r["torch"]["ms_median"] for r in runs], "s--", label=f"PyTorch, {n} thr")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("ms / training step")
        ax.set_title(f"step time vs {label} ({fixed[0]} {fixed[1]})")
        if ax.lines:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return os.path.abspath(path)


# ----------------------------------------------------------------------------- workers
def emit(obj) -> int:
    print(MARK + json.dumps(obj), flush=True)
    return 0


def worker(kind: str, spec: dict) -> int:
    try:
        return _worker(kind, spec)
    except TinyLLMError as e:
        print(e.line(), file=sys.stderr)
        return e.exit_code


def _worker(kind: str, spec: dict) -> int:
    from backends import tune_malloc

    spec["malloc_tuned"] = tune_malloc()  # as a training program does (tinyllm train)
    if kind == "time":
        return emit(time_worker(spec))
    if kind.startswith("mem-"):
        return emit(memory_worker(spec, kind[4:]))
    if kind == "sample":
        return emit(sample_worker(spec))
    raise UsageError(f"unknown worker {kind}")


def _import_torch(spec):
    if not spec["torch"]:
        return None
    try:
        import torch
    except ImportError:
        return None
    if spec["device"].startswith("cuda"):
        if not torch.cuda.is_available():
            print("bench: this torch build has no usable CUDA; timing tinyllm alone", file=sys.stderr)
            return None
    else:
        torch.set_num_threads(spec["threads"])
    return torch


def time_worker(spec: dict) -> dict:
    from bench_steps import TinyRunner, TorchRunner, correctness_gate, make_batches

    if spec.get("only"):
        return solo_time_worker(spec)
    torch = _import_torch(spec)
    tl = TinyRunner(spec)
    res = {"config": spec["config"], "threads": spec["threads"], "device": tl.backend.name,
           "machine": machine_info(), "malloc_tuned": spec.get("malloc_tuned"),
           "env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")},
           "fast_path": fast_path(tl.backend)}
    tr = None
    tn = TinyRunner(dict(spec, device="cpu")) if spec["device"] == "torch" else None  # tinyllm on NumPy beside
    if torch is not None:
        res["torch_version"] = torch.__version__
        res["torch_threads"] = torch.get_num_threads()
        res["gate"] = correctness_gate(spec, GATE_RTOL)
        tr = TorchRunner(spec, tl.model)
    batches = make_batches(spec["config"], spec["warmup"] + spec["steps"], spec["seed"])
    ta, tb, tc = [], [], []
    for i, (x, y) in enumerate(batches):
        a = tl.step(x, y)
        b = tr.step(x, y) if tr is not None else None
        c = tn.step(x, y) if tn is not None else None
        if i >= spec["warmup"]:
            ta.append(a)
            tb += [b] if b is not None else []
            tc += [c] if c is not None else []
    tokens = spec["config"]["batch"] * spec["config"]["block"]
    res["tinyllm"] = _summary(ta, tokens)
    res["tinyllm"]["final_loss"] = tl.last_loss
    if tn is not None:
        res["numpy"] = _summary(tc, tokens)
        res["vs_numpy"] = res["tinyllm"]["ms_median"] / res["numpy"]["ms_median"]
    if tr is not None:
        res["torch"] = _summary(tb, tokens)
        res["torch"]["final_loss"] = tr.last_loss
        res["ratio"] = res["tinyllm"]["ms_median"] / res["torch"]["ms_median"]
    policy = getattr(tl.backend.fast, "threads", None)
    if policy is not None:
        res["policy"] = policy.describe()
    if spec.get("profile_steps"):
        res["profile"] = tl.profile(batches, spec["profile_steps"])
        res["profile_steps"] = spec["profile_steps"]
        if tr is not None:
            res["torch_profile"] = tr.profile(batches, spec["profile_steps"])
    return res


def fast_path(backend) -> str:
    """The name of the backend's fused kernels."""
    fast = backend.fast
    return "none (standard ops)" if fast is None else getattr(fast, "name", type(fast).__name__)


def machine_info() -> dict:
    """CPU model and vector extensions (/proc/cpuinfo), NumPy and its BLAS (threadpoolctl)."""
    import platform

    import numpy
    from threadpoolctl import threadpool_info

    from backends.cpu.info import cpu_info

    model, flags = cpu_info()
    cpu = model or platform.processor() or platform.machine()
    vector = " ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile") if f in flags)
    blas = [{k: b.get(k) for k in ("internal_api", "version", "architecture", "threading_layer", "num_threads")}
            for b in threadpool_info() if b.get("user_api") == "blas"]
    from backends.cpu.mkl import architecture, gemm_available, why_not

    for b in blas:
        b["used"] = b["internal_api"] != "mkl" or gemm_available()  # MKL may be loaded and refused
        if b["internal_api"] == "mkl" and not b["architecture"]:  # threadpoolctl cannot tell MKL's
            b["architecture"] = architecture()
    return {"cpu": cpu, "cpus": os.cpu_count(), "vector": vector, "numpy": numpy.__version__, "blas": blas,
            "mkl_not_used": why_not()}


def solo_time_worker(spec: dict) -> dict:
    """Step times of one framework alone (spec["only"]), same batches and initial weights."""
    from bench_steps import TinyRunner, TorchRunner, make_batches

    if spec["only"] == "torch":
        _import_torch(spec)  # first: MKL's libraries loaded by tinyllm before it take over PyTorch's MKL calls
    tl = TinyRunner(spec)  # the torch twin copies its initial weights
    runner = TorchRunner(spec, tl.model) if spec["only"] == "torch" else tl
    batches = make_batches(spec["config"], spec["warmup"] + spec["steps"], spec["seed"])
    times = [runner.step(x, y) for x, y in batches]
    return {"times": times[spec["warmup"]:]}


def _summary(times, tokens) -> dict:
    ms = sorted(1e3 * t for t in times)
    med = statistics.median(ms)
    return {"ms_median": med, "ms_p10": ms[len(ms) // 10], "ms_p90": ms[(9 * len(ms)) // 10],
            "ms_min": ms[0], "tokens_per_s": tokens / (med / 1e3), "steps": len(ms)}


def memory_worker(spec: dict, framework: str) -> dict:
    from bench_steps import TinyRunner, TorchRunner, make_batches, memory_probe

    batches = make_batches(spec["config"], spec["steps"], spec["seed"])
    if framework == "tinyllm":
        runner = TinyRunner(spec)
    else:
        torch = _import_torch(dict(spec, torch=True))
        if torch is None:
            return {"step_bytes": None}
        runner = TorchRunner(spec, TinyRunner(spec).model)
    probe = memory_probe(runner)
    probe.start()
    for x, y in batches:
        runner.step(x, y)
    return probe.stop()


def sample_worker(spec: dict) -> dict:
    from bench_steps import time_generate

    return time_generate(spec)


if __name__ == "__main__":
    sys.path.insert(0, HERE)
    sys.exit(main())
