"""Data-parallel speed on the CPUs of one machine, measured side by side (tokens/s of the global batch):

    A  tinyllm, 1 process x 2 threads
    B  tinyllm, 2 MPI ranks x 1 thread   (mpiexec -n 2; half of each batch per rank, one Allreduce a step)
    C  tinyllm, 1 process x 1 thread     (the base of the scaling efficiency B / 2C)
    D  PyTorch DDP (gloo), 2 ranks x 1 thread, the same model and global batch (when torch is installed)

    python scripts/bench/bench_mpi.py                 # nanoGPT's CPU recipe (block 64, batch 12, 4 x 4 x 128)
    python scripts/bench/bench_mpi.py --rounds 5 --json

Each configuration is its own set of processes, run in turns A, B, C, D, A, B, ... (`--rounds` times) so
machine noise hits them alike; medians are reported, with the ratios B/A, B/D and the scaling efficiency
B / (2 x C). A tinyllm run is `Trainer.fit` on Tiny Shakespeare with its threads pinned: the eval at the end
of `--warmup` steps resets the clock, the one after `--steps` more reads it (the trainer's own ms/step).
The report starts with the CPU model and the BLAS NumPy runs, and the CPU load before the run.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))  # scripts/bench/ -> root
DATA = os.path.join(ROOT, "data", "tinyshakespeare.txt")
MPI_FLAGS = ["--allow-run-as-root", "--oversubscribe"]  # root in a container; 2 ranks on 2 cores


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=12, help="global batch (sequences a step)")
    p.add_argument("--block", type=int, default=64)
    p.add_argument("--n-layer", type=int, default=4)
    p.add_argument("--n-head", type=int, default=4)
    p.add_argument("--n-embd", type=int, default=128)
    p.add_argument("--steps", type=int, default=40, help="timed steps per run")
    p.add_argument("--warmup", type=int, default=10, help="untimed steps first")
    p.add_argument("--rounds", type=int, default=3, help="turns of A, B, C, D")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--worker", choices=["tinyllm", "ddp"], help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--rank", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--world", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def model_args(a) -> dict:
    return {"n_layer": a.n_layer, "n_head": a.n_head, "n_embd": a.n_embd, "block_size": a.block, "bias": False,
            "dropout": 0.0}


# -- workers ---------------------------------------------------------------------------------------------------
def tinyllm_worker(a) -> dict | None:
    from tinyllm import TrainConfig, Trainer

    cfg = TrainConfig(data=DATA, lines=False, steps=a.warmup + a.steps, batch_size=a.batch, eval_interval=a.warmup,
                      eval_iters=1, log_interval=a.steps, samples=0, device="cpu", out=a.out, warmup=0, lr=1e-3,
                      **model_args(a))
    t = Trainer(cfg, verbose=False)
    if t.backend.fast is not None:
        t.backend.fast.threads.pin(a.threads)
    t.fit()
    if not t.world.root:
        return None
    last = t.evals[-1]  # the clock restarted after the eval at --warmup
    return {"tok_per_s": last["tok_per_s"], "ms_per_step": last["ms_per_step"], "ranks": t.world.size,
            "threads": a.threads}


def ddp_worker(a) -> dict | None:
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    sys.path.insert(0, HERE)
    from bench_torch_gpt import TorchGPT, make_optimizer
    from tinyllm.models import config_for

    torch.set_num_threads(a.threads)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{a.port}", rank=a.rank, world_size=a.world)
    torch.manual_seed(0)
    c = config_for("gpt", vocab_size=65, **model_args(a))
    model = DistributedDataParallel(TorchGPT(c))
    opt = make_optimizer(model.module, 1e-3, 0.1, (0.9, 0.99), "cpu")
    rows = a.batch // a.world + (1 if a.rank < a.batch % a.world else 0)
    g = torch.Generator().manual_seed(a.rank)

    def step():
        x = torch.randint(0, 65, (rows, a.block), generator=g)
        y = torch.randint(0, 65, (rows, a.block), generator=g)
        opt.zero_grad(set_to_none=True)
        _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    for _ in range(a.warmup):
        step()
    dist.barrier()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        step()
    dist.barrier()
    sec = time.perf_counter() - t0
    dist.destroy_process_group()
    if a.rank:
        return None
    return {"tok_per_s": round(a.batch * a.block * a.steps / sec), "ms_per_step": round(1000 * sec / a.steps, 2),
            "ranks": a.world, "threads": a.threads}


# -- the driver ------------------------------------------------------------------------------------------------
def _env(threads: int) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "PMI_", "PMIX_"))}
    return {**env, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": "1",
            "MKL_NUM_THREADS": str(threads)}


def _size_args(a) -> list:
    return ["--batch", str(a.batch), "--block", str(a.block), "--n-layer", str(a.n_layer), "--n-head",
            str(a.n_head), "--n-embd", str(a.n_embd), "--steps", str(a.steps), "--warmup", str(a.warmup)]


def _result(procs) -> dict:
    found = None
    for p in procs:
        out, err = p.communicate(timeout=900)
        if p.returncode != 0:
            raise SystemExit(f"error: a benchmark worker failed (exit {p.returncode}): {err.strip()[-400:]}")
        for line in out.splitlines():
            if line.startswith("{"):
                found = json.loads(line)
    if found is None:
        raise SystemExit("error: a benchmark worker printed no result")
    return found


def run_config(a, name: str, tmp: str) -> dict:
    me = [sys.executable, os.path.abspath(__file__), *_size_args(a)]
    out = os.path.join(tmp, f"{name}-{time.monotonic_ns()}")
    if name in ("A", "C"):
        threads = 2 if name == "A" else 1
        cmd = [*me, "--worker", "tinyllm", "--threads", str(threads), "--out", out]
        return _result([subprocess.Popen(cmd, env=_env(threads), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         text=True)])
    if name == "B":
        cmd = [shutil.which("mpiexec"), *MPI_FLAGS, "-n", "2", *me, "--worker", "tinyllm", "--threads", "1",
               "--out", out]
        return _result([subprocess.Popen(cmd, env=_env(1), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         text=True)])
    with socket.socket() as s:  # D: a free port for gloo's rendezvous
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = [subprocess.Popen([*me, "--worker", "ddp", "--threads", "1", "--rank", str(r), "--world", "2",
                               "--port", str(port)], env=_env(1), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for r in range(2)]
    return _result(procs)


LABELS = {"A": "tinyllm 1 process x 2 threads", "B": "tinyllm 2 MPI ranks x 1 thread",
          "C": "tinyllm 1 process x 1 thread", "D": "PyTorch DDP gloo 2 ranks x 1 thread"}


def cpu_busy(seconds: float = 3.0) -> float:
    def snap():
        f = list(map(int, open("/proc/stat").readline().split()[1:]))
        return sum(f), f[3] + f[4]

    a = snap()
    time.sleep(seconds)
    b = snap()
    return 1 - (b[1] - a[1]) / max(1, b[0] - a[0])


def main(argv=None) -> int:
    a = parse_args(argv)
    if a.worker:
        rep = tinyllm_worker(a) if a.worker == "tinyllm" else ddp_worker(a)
        if rep is not None:
            print(json.dumps(rep), flush=True)
        return 0
    if shutil.which("mpiexec") is None:
        raise SystemExit("error: mpiexec not found; pip install -e '.[mpi]' (mpi4py and Open MPI)")
    try:
        import torch  # noqa: F401
        names = ["A", "B", "C", "D"]
    except ImportError:
        print("note: PyTorch is not installed; DDP is skipped (pip install torch==2.13.0, the CPU build)",
              file=sys.stderr)
        names = ["A", "B", "C"]
    sys.path.insert(0, HERE)
    from bench import machine_info

    busy_before = cpu_busy()
    runs = {n: [] for n in names}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(a.rounds):
            for n in names:
                runs[n].append(run_config(a, n, tmp))
    busy_after = cpu_busy()
    med = {n: statistics.median(r["tok_per_s"] for r in runs[n]) for n in names}
    rep = {"machine": machine_info(), "cpu_busy_before": round(busy_before, 2), "cpu_busy_after": round(busy_after, 2),
           "config": {**model_args(a), "global_batch": a.batch, "steps": a.steps, "warmup": a.warmup,
                      "rounds": a.rounds},
           "tok_per_s": {n: [r["tok_per_s"] for r in runs[n]] for n in names},
           "median_tok_per_s": med,
           "ratios": {"B/A": med["B"] / med["A"], "scaling_efficiency B/(2C)": med["B"] / (2 * med["C"])}}
    if "D" in med:
        rep["ratios"]["B/D"] = med["B"] / med["D"]
    if a.json:
        print(json.dumps(rep, indent=1))
        return 0
    m = rep["machine"]
    blas = ", ".join(f"{b['internal_api']} {b['version']} ({b['architecture']})" for b in m["blas"])
    print(f"machine: {m['cpu']} ({m['cpus']} CPUs; {m['vector'] or 'no AVX'}) | NumPy {m['numpy']} | BLAS {blas}")
    print(f"CPU busy before the run {busy_before:.0%}, after {busy_after:.0%} (others' load skews the figures)")
    print(f"gpt {a.n_layer} x {a.n_head} x {a.n_embd}, block {a.block}, global batch {a.batch}; {a.steps} timed steps "
          f"after {a.warmup}, {a.rounds} rounds in turns")
    for n in names:
        print(f"  {n}  {LABELS[n]:<38} median {med[n]:>9,.0f} tok/s   runs: "
              + ", ".join(f"{x:,}" for x in rep["tok_per_s"][n]))
    for k, v in rep["ratios"].items():
        print(f"  {k:<28} {v:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
