"""A small training loop built only from the checkpoint / lock / guard API.

The fault tests drive it in-process (to monkeypatch faults in) and as a
subprocess (to SIGKILL / SIGINT it). It is the minimal correct use of the
API, the same steps the real Trainer takes:

    python tests/faultloop.py OUT STEPS [--lr LR] [--skip-nonfinite] [--data PATH] [--block-size N]

Exit codes: 0 done, 1 out of memory, 2 bad input / unusable output dir /
damaged checkpoint / other run holds the dir, 3 non-finite loss, 130 interrupted.
"""
from __future__ import annotations

import argparse
import os
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from backends import get_backend  # noqa: E402
from tinyllm.data import Batcher, DataError, load_dataset  # noqa: E402
from tinyllm.models import build_model  # noqa: E402
from tinyllm.optim import AdamW, clip_grad_norm, decay_groups  # noqa: E402
from tinyllm.train.checkpoint import (CheckpointError, OutputDirError, has_checkpoint, load_checkpoint,  # noqa: E402
                                      prepare_output_dir, save_checkpoint)
from tinyllm.train.resume import check_tensors, check_tokenizer  # noqa: E402
from tinyllm.guards import (EXIT_INTERRUPTED, InterruptGuard, NonFiniteError, check_finite,  # noqa: E402
                                  is_finite, oom_message)
from tinyllm.train.lock import LockError, RunLock  # noqa: E402


def parse(argv):
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("steps", type=int)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--skip-nonfinite", action="store_true")
    p.add_argument("--data", default="names")
    p.add_argument("--block-size", type=int, default=8)
    p.add_argument("--n-embd", type=int, default=32)
    return p.parse_args(argv)


def run(a) -> int:
    backend = get_backend("cpu")
    ds = load_dataset(a.data)
    batcher = Batcher(ds.train, backend, a.block_size)
    model = build_model("gpt", vocab_size=ds.tokenizer.vocab_size, n_layer=1, n_head=2, n_embd=a.n_embd,
                        block_size=a.block_size, device="cpu", seed=0)
    opt = AdamW(decay_groups(model, 0.1), lr=a.lr, betas=(0.9, 0.99))
    rng = backend.rng(1)
    step, losses, skipped = 0, [], 0
    prepare_output_dir(a.out)
    with RunLock(a.out) as lock:
        if lock.taken_over:
            print(f"took over the stale lock of pid {lock.taken_over.get('pid')}", flush=True)
        if has_checkpoint(a.out):
            tensors, meta = load_checkpoint(a.out)
            check_tokenizer(meta, ds.tokenizer.to_dict())
            params = dict(model.named_parameters())
            check_tensors({k[6:]: v for k, v in tensors.items() if k.startswith("model.")},
                          {n: p.shape for n, p in params.items()})
            model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
            opt.load_state_arrays({k[6:]: v for k, v in tensors.items() if k.startswith("optim.")}, meta["opt_steps"])
            rng.set_state(meta["rng"])
            step, losses, skipped = meta["step"], meta["losses"], meta["skipped"]
            print(f"resumed at step {step}", flush=True)

        def save():
            t = {f"model.{n}": backend.to_host(p.data) for n, p in model.named_parameters()}
            t.update({f"optim.{k}": backend.to_host(v) for k, v in opt.state_arrays().items()})
            save_checkpoint(a.out, t, {"step": step, "losses": losses, "skipped": skipped, "rng": rng.get_state(),
                                       "opt_steps": opt.step_count, "tokenizer": ds.tokenizer.to_dict()})

        with InterruptGuard() as guard:
            while step < a.steps:
                x, y = batcher.batch(4, rng)
                _, loss = model(x, y)
                model.zero_grad()
                loss.backward()
                norm = clip_grad_norm(model.parameters(), 1.0)
                lv = float(loss.data)
                step += 1
                if not is_finite(lv, norm):
                    if not a.skip_nonfinite:
                        check_finite(step, lv, norm)  # raises: the last checkpoint stays as it was
                    skipped += 1
                else:
                    opt.step()
                    losses.append(lv)
                save()
                print(f"step {step} loss {lv!r}", flush=True)
                if guard.requested:
                    print(f"interrupted: checkpoint of step {step} saved in {a.out}; resume with --resume",
                          flush=True)
                    return EXIT_INTERRUPTED
    if skipped:
        print(f"skipped {skipped} non-finite step(s)", flush=True)
    return 0


def main(argv=None) -> int:
    a = parse(argv)
    try:
        return run(a)
    except (DataError, CheckpointError, OutputDirError, LockError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except NonFiniteError as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print(f"stopped at once; the last checkpoint in {a.out} is kept", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:
        msg = oom_message(e)
        if msg is None:
            raise
        print(f"error: {msg}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
