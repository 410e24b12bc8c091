"""Device kernel launches in one training step, counted by the simulated CuPy (backends/cuda/sim.py).

    TINYLLM_CUDA_SIM=1 python scripts/bench/launches.py            # the gpu-baby model, dropout 0.2
    TINYLLM_CUDA_SIM=1 python scripts/bench/launches.py --json

The model is the gpu-baby benchmark's (6 layers, 6 heads, 384 wide, dropout 0.2, no biases) at a small
batch and context: a step launches the same kernels at any batch or context, and the simulation runs
them on the CPU. One untimed step first (compiles and allocates), then one step counted: the trainer's
own (batch, forward, backward, the flat clip, AdamW). Prints `launches per step: N` and the context
entries; exit 1 if N is over --budget.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def count(batch: int, block: int, dropout: float, fused: bool = True) -> dict:
    from backends.cuda import sim
    from tinyllm import Trainer, TrainConfig

    with tempfile.TemporaryDirectory() as out:
        cfg = TrainConfig(data=str(ROOT / "data" / "tinyshakespeare.txt"), device="cuda", n_layer=6, n_head=6,
                          n_embd=384, block_size=block, batch_size=batch, dropout=dropout, bias=False, steps=10,
                          eval_interval=1000, eval_iters=1, log_interval=1000, samples=0, out=out, lines=False)
        t = Trainer(cfg, verbose=False)
        if not fused:
            t.backend.fast = None
            t.backend.philox_words = None
        for counted in (False, True):  # a warm-up step first: kernels compiled, buffers made
            sim.reset()
            t.train_step()  # the trainer's step: batch, forward, backward, clip, AdamW (no read)
        return dict(sim.COUNTS)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--block", type=int, default=16)
    ap.add_argument("--dropout", type=float, default=0.2)
    ap.add_argument("--budget", type=int, default=400)
    ap.add_argument("--unfused", action="store_true", help="also count the step without the fused kernels")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    if not os.environ.get("TINYLLM_CUDA_SIM"):
        os.environ["TINYLLM_CUDA_SIM"] = "1"
    rep = {"fused": count(a.batch, a.block, a.dropout)}
    if a.unfused:
        rep["unfused"] = count(a.batch, a.block, a.dropout, fused=False)
    if a.json:
        print(json.dumps(rep))
    else:
        for k, c in rep.items():
            print(f"{k}: launches per step {c['launches']}, device-context entries {c['contexts']}, "
                  f"host->device {c['h2d']}, device->host {c['d2h']}")
    n = rep["fused"]["launches"]
    print(f"launches per step: {n}")
    return 0 if n <= a.budget else 1


if __name__ == "__main__":
    sys.exit(main())
