"""The Trainer: one run from its settings to a trained model, read top to bottom.

    from tinyllm import Trainer, TrainConfig
    t = Trainer(TrainConfig(data="names", steps=500))
    t.fit()
    print(t.generate(num_samples=5))

__init__ checks everything that can be wrong with the inputs (settings,
device, data file, the checkpoint to resume, a model too large for the
memory) before the output directory is touched; fit() then creates it, takes
the run lock and runs the loop: `_step` per batch, a read of the losses every
`log_interval` steps, an evaluation and a checkpoint every `eval_interval`.
The other rooms: resume.py (checkpoint state, resuming, load_trained), log.py
(console, progress bar, log.jsonl, loss.png), build.py (model, optimizer).

Output goes to config.out; left as None (the library's default) a run gets a
fresh directory runs/<date>-<time>-<run id>, so a library run never writes
into ./out, where the CLI's runs live. A SIGINT or SIGTERM finishes the
step, saves and raises TrainingInterrupted (the CLI exits 130 / 143).

Host <-> device traffic per step is one copy in (the batch's start offsets);
the loss and gradient norm stay on the device and are read together, for all
steps since the last read, every `log_interval` steps (and before evaluating
or saving). `transfers` counts what crossed, per phase.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import time

from backends import TransferStats, get_backend

from ..data import DATASETS, Batcher, DataError, load_dataset
from ..errors import ConfigError, NonFiniteError, OutOfMemory, TrainingInterrupted
from ..nn import Dropout
from ..optim import make_schedule
from ..sample import complete
from ..tensor import no_grad
from . import resume
from .build import build_checked, make_optimizer
from .checkpoint import OutputDirError, committed_file, new_run_id, prepare_output_dir, run_files, save_checkpoint
from .config import TrainConfig
from .guards import InterruptGuard, check_finite, is_finite, oom_message, signal_name
from .init_from import data_tokenizer, pretrained_model
from .lock import RunLock
from ..dist import collective_init, rank_device, rank_log
from .log import RunLog, describe_backend, foreign_run_files
from .resume import load_trained, model_from_meta  # noqa: F401  (re-exported: tinyllm.train.trainer.load_trained)

MAX_CONSECUTIVE_SKIPS = 20  # with --skip-nonfinite: give up when the weights themselves went bad
RUNS_DIR = "runs"  # where a library run without config.out gets its fresh directory


def _fingerprint(ds) -> str:
    """A hash of the token streams (their bytes: no text copy of a large dataset)."""
    h = hashlib.sha256()
    for split in (ds.train, ds.val):
        h.update(memoryview(split).cast("B"))
        h.update(b"|")
    return h.hexdigest()[:16]


class Trainer:
    """Train a model from a TrainConfig; the CLI and library users share this class.

    verbose=False keeps it quiet (tests); log lines go to stdout, warnings to stderr.
    """

    @collective_init  # [dist] self.world, self.parallel; under MPI an error on one rank stops every rank
    def __init__(self, config: TrainConfig | None = None, verbose: bool = True, **overrides):
        cfg = config if config is not None else TrainConfig()
        if overrides:
            try:
                cfg = cfg.replace(**overrides)
            except TypeError as e:
                raise ConfigError(f"unknown training setting: {e}") from None
        cfg = cfg.resolve().validate()  # resuming: the checkpoint's settings for those not given
        self.run_id, self._replaces = new_run_id(), None  # the id every file this run writes carries
        if cfg.out is None:  # the library's default: a fresh directory, never ./out
            cfg = cfg.replace(out=os.path.join(RUNS_DIR, f"{time.strftime('%Y%m%d-%H%M%S')}-{self.run_id}"))
        self.config, self.out, self.verbose = cfg, cfg.out, verbose and self.world.root  # [dist] rank 0 prints
        self.log = rank_log(RunLog, self.world, cfg.out, verbose)  # [dist] and writes
        self.backend = get_backend(rank_device(cfg.device, self.world))  # DeviceError, or cpu with one warning line
        # the split never depends on --seed; the tokenizer is the data's own, a BPE trained on it, or --init-from's
        self.dataset = ds = load_dataset(cfg.data, seed=0, lines=cfg.lines, tokenizer=data_tokenizer(cfg),
                                         raw_text=cfg.raw_text)
        self.lines_guessed = cfg.data not in DATASETS and cfg.lines is None
        if cfg.data not in DATASETS:  # stored resolved (the path, and lines or not): --resume reads it as now
            self.config = cfg = cfg.replace(data=os.path.abspath(cfg.data), lines=ds.lines is not None)
        self.tokenizer = ds.tokenizer
        self.data_info = {"spec": cfg.data, "lines": cfg.lines, "name": ds.name, "train_tokens": len(ds.train),
                          "val_tokens": len(ds.val), "fingerprint": _fingerprint(ds), **ds.info}
        if cfg.resume and self.world.root:  # [dist] a live run there: say that, before ranks compare checkpoints
            RunLock(cfg.out).check()
        ckpt = resume.read_resume(self) if cfg.resume else None
        self.model_name = cfg.model
        self.model = self._build_model(ckpt[1] if ckpt else None)
        self.block_size = self.model.config.block_size
        self._check_lengths(self.block_size)
        if ckpt is None and self.world.root:  # [dist] rank 0 alone writes
            self._check_fresh_out()
        self.optimizer = make_optimizer(cfg, self.model)
        self.schedule = make_schedule(cfg.schedule, cfg.peak_lr, cfg.steps, cfg.warmup_steps, cfg.min_lr)
        self.rng = self.backend.rng(cfg.seed)  # batch draws
        self.dropouts = [m for m in self.model.modules() if isinstance(m, Dropout)]
        vocab = self.model.config.vocab_size  # the data's ids are checked against it before they go over
        self.train_batches = Batcher(ds.train, self.backend, self.block_size, vocab, "the training data")
        self.val_batches = Batcher(ds.val, self.backend, self.block_size, vocab, "the validation data")
        self.step = 0
        self.losses: list = []   # training loss per step (None where non-finite)
        self.evals: list = []    # {"step", "train", "val", "lr", ...} per evaluation
        self.skipped = 0
        self.last_eval: dict | None = None
        self.transfers: dict = {}  # phase -> {"calls", h2d_calls, h2d_bytes, d2h_calls, d2h_bytes, syncs}
        self._pending: list = []   # (loss, grad norm) device scalars of the steps not read yet
        self._consecutive = 0      # non-finite steps in a row (with skip_nonfinite)
        if ckpt is not None:
            resume.restore(self, *ckpt)

    def _build_model(self, meta: dict | None):
        cfg = self.config
        if meta is not None:  # resuming: the checkpoint's model
            return model_from_meta(meta, self.backend, cfg.out)
        if cfg.init_from:
            return pretrained_model(cfg, self.backend)
        return build_checked(cfg.model, cfg.model_config(self.tokenizer.vocab_size), self.backend, seed=cfg.seed)

    # -- validation ---------------------------------------------------------------------
    def _check_lengths(self, block: int) -> None:
        ds, cfg = self.dataset, self.config
        n = min(len(ds.train), len(ds.val))
        if n < block + 1:
            src = f"dataset {cfg.data!r}" if cfg.data in DATASETS else f"data file {cfg.data!r}"
            split = "training (90%)" if len(ds.train) <= len(ds.val) else "validation (10%)"
            raise DataError(f"{src} is too short for block_size {block}: its {split} split has {n} tokens and "
                            f"needs at least block_size + 1 = {block + 1}; use a longer file or a smaller block_size "
                            f"(--block-size)")

    def _check_fresh_out(self) -> None:
        """A new run never replaces or mixes with an earlier one unless asked (--overwrite)."""
        cfg = self.config
        found = run_files(cfg.out) if os.path.isdir(cfg.out) else []
        if not found:
            return
        RunLock(cfg.out).check()  # a live run there: say that, not "holds a run"
        foreign = foreign_run_files(cfg.out)
        if foreign:  # a user's own file: never replaced, never written into
            raise OutputDirError(f"{os.path.join(cfg.out, foreign[0])!r} was not written by a tinyllm run (it carries "
                                 f"no run id) and a run writes its {foreign[0]} there; move that file, or point "
                                 f"--out at another directory")
        if not cfg.overwrite:
            how = "pass --resume to continue it, another --out," if "checkpoint.json" in found else \
                "pass another --out,"
            raise OutputDirError(f"output directory {cfg.out!r} already holds a training run ({', '.join(found)}); "
                                 f"{how} or --overwrite to replace it")
        self._replaces = committed_file(cfg.out)[0] or "legacy"

    # -- checkpoints ------------------------------------------------------------------------
    def state(self) -> tuple:
        """(tensors, meta) for save_checkpoint (resume.state)."""
        return resume.state(self)

    @property
    def replaces(self) -> str | None:
        """The id of the earlier run this one replaces (--overwrite), until its first save."""
        return self._replaces

    def save(self) -> None:
        with self.parallel.saving(self.step) as go:  # [dist] rank 0 alone writes, one writer at a time
            if go:
                with self._counting("checkpoint"):
                    save_checkpoint(self.out, *self.state(), run_id=self.run_id, replaces=self._replaces)
                self._replaces = None

    def describe(self) -> str:
        ds, lines = self.dataset, self.config.lines
        notes = list(ds.info.get("cleaned", []))
        if self.config.data not in DATASETS:  # what --lines chose, and how to choose the other
            how, other, flag = ("one example a line", "one text", "--no-lines") if lines else \
                ("one text", "one example a line", "--lines")
            notes.append(f"{how}, guessed: {flag} reads it as {other}" if self.lines_guessed else how)
        cleaned = f" ({'; '.join(notes)})" if notes else ""
        return (f"device {describe_backend(self.backend)} | {self.model.describe()}: "
                f"{self.model.num_parameters() / 1e6:.2f}M parameters | data {ds.name}{cleaned}: "
                f"{len(ds.train):,} train / {len(ds.val):,} val tokens, vocab {self.tokenizer.vocab_size} | "
                f"out {self.out}/" + self.parallel.describe())  # [dist]

    # -- evaluation ---------------------------------------------------------------------------
    def _loss(self, x, y):
        """The model's mean loss on a batch (the one place the trainer calls forward)."""
        return self.model(x, y)[1]

    def evaluate(self, iters: int | None = None, batch_size: int | None = None) -> dict:
        """Mean loss over `iters` batches of each split (the same batches every call); the losses are
        summed on the device and read once."""
        iters = iters or self.config.eval_iters
        B = batch_size or self.config.batch_size
        rows = self.parallel.rows(B)  # [dist] this rank's rows of each batch
        be = self.backend
        xp = be.xp
        was = self.model.training
        self.model.eval()
        try:
            with no_grad(), be.activate():
                sums = []
                for k, batches in enumerate((self.train_batches, self.val_batches)):
                    rng = be.rng(10_000 + k)
                    losses = [self._loss(*batches.batch(B, rng, rows)).data for _ in range(iters)]
                    sums.append(xp.sum(xp.astype(xp.stack(losses), xp.float64)))
                train, val = self.parallel.mean_host(be.to_host(xp.stack(sums)), B).tolist()  # [dist]
        finally:
            self.model.train(was)
        return {"train": train / iters, "val": val / iters}

    # -- training ---------------------------------------------------------------------------------
    def fit(self, until: int | None = None) -> "Trainer":
        """Train to config.steps (or stop early at step `until`, checkpointing there)."""
        cfg, log = self.config, self.log
        end = cfg.steps if until is None else max(self.step, min(int(until), cfg.steps))
        with self.parallel.output(self.out, prepare_output_dir, RunLock):  # [dist] rank 0: OutputDirError, lock
            if self._replaces is not None and self.step == 0 and not self.evals:
                log.start_new()  # --overwrite: the earlier run's log is not continued
            log.print(self.describe())
            if self.step > 0:
                log.print(f"resuming from step {self.step}/{cfg.steps}")
            log.record({"event": "start", "run_id": self.run_id, "step": self.step, "device": self.backend.name,
                        "describe": self.describe(), "config": cfg.to_dict()})
            try:
                with self.parallel.guard(self, InterruptGuard) as guard:  # [dist] ranks stop together
                    self._loop(end, guard)
            except NonFiniteError as e:
                log.record({"event": "nonfinite", "step": self.step, "error": str(e)})
                raise
            except TrainingInterrupted:
                raise
            except Exception as e:
                msg = oom_message(e)
                if msg is None:
                    raise
                log.record({"event": "oom", "step": self.step, "error": msg})
                raise OutOfMemory(msg) from None
            finally:
                log.close_bar()
            log.record({"event": "end", "step": self.step, "skipped": self.skipped, "transfers": self.transfers})
            if cfg.transfer_stats:
                log.transfers(self.backend.name, self.transfers)
            plotted = self._plot()
            if self.step >= cfg.steps and cfg.samples and log.printing:
                self._print_samples()
        log.print(f"saved in {self.out}/ (step {self.step}: {log.files(plotted)}); sample with: tinyllm sample "
                  f"--out {self.out}" + ("" if self.step >= cfg.steps else
                                         f"; continue with: tinyllm train --resume --out {self.out}"))
        return self

    def _loop(self, end: int, guard) -> None:
        """Steps until `end`: read the losses every log_interval, evaluate and save every eval_interval,
        save and stop when a signal asked."""
        cfg = self.config
        self.log.open_bar(end, self.step)
        if self.step == 0 and not self.evals:
            self._eval_and_log(0.0, 0)
        self.model.train()
        mark, n = time.perf_counter(), 0  # steps since the last log line, timed from `mark`
        self._read_clock = (mark, mark)  # (the loop's start, the last read): the step records' timing
        while self.step < end:
            with self._counting("step"), self.backend.activate():
                lr = self._step()
            self.step += 1
            n += 1
            self.log.advance()
            evaluating = self.step % cfg.eval_interval == 0 or self.step == end
            if evaluating or guard.requested or self.step % cfg.log_interval == 0:
                with self._counting("log"):
                    self._read_pending()  # NonFiniteError before anything is saved
            if evaluating:
                busy = max(time.perf_counter() - mark, 1e-9)  # the read above waited for the device
                self._eval_and_log(busy / n, cfg.batch_size * self.block_size * n / busy, lr)
                self.save()
                mark, n = time.perf_counter(), 0
                self._read_clock = (self._read_clock[0], mark)
            if guard.requested:
                self._stop(guard.signum)

    def train_step(self) -> float:
        """One optimizer step on the next batch, as fit's loop takes it (nothing is read back); its lr.
        For measuring a step (scripts/bench/launches.py); fit() is the way to train."""
        with self.backend.activate():
            lr = self._step()
        self.step += 1
        return lr

    def _step(self) -> float:
        """One optimizer step on one batch -> its lr. The loss and gradient norm stay on the device
        (in _pending) until the next read."""
        cfg, opt, dp = self.config, self.optimizer, self.parallel
        opt.lr = lr = self.schedule(self.step)
        for d in self.dropouts:  # the masks of step N depend on N alone: exact resume
            if d.stream is not None:
                d.stream.counter = self.step
        dp.shard_dropout(self.dropouts, cfg.batch_size)  # [dist] masks: this rank's rows of the batch's
        x, y = self.train_batches.batch(cfg.batch_size, self.rng, dp.rows(cfg.batch_size))  # [dist] its rows
        opt.zero_grad()
        loss = self._loss(x, y)
        loss.backward()
        loss_data = dp.reduce_step(opt, loss.data, cfg.batch_size)  # [dist] one Allreduce: the batch's mean
        norm = opt.clip_grad_norm(cfg.grad_clip if cfg.grad_clip > 0 else None)
        with dp.update(self):  # [dist] a stop snapshot sees whole steps
            if cfg.skip_nonfinite:  # decided on the device: no read
                xp = self.backend.xp
                opt.step(only_if=xp.isfinite(loss_data) & xp.isfinite(norm))
            else:
                opt.step()
        self._pending.append((loss_data, norm))
        return lr

    def _stop(self, signum: int) -> None:
        """A signal asked to stop: save, plot, and raise TrainingInterrupted (exit 130 / 143)."""
        self.save()
        self._plot()
        what = "interrupted" if signum == signal.SIGINT else f"stopped by {signal_name(signum)}"
        raise TrainingInterrupted(f"{what} at step {self.step}/{self.config.steps}; checkpoint saved in "
                                  f"{self.out}/; continue with: tinyllm train --resume --out {self.out}", signum)

    @contextlib.contextmanager
    def _counting(self, phase: str):
        """Add what crossed between host and device inside the block to transfers[phase]."""
        before = self.backend.stats.copy()
        try:
            yield
        finally:
            tot = self.transfers.setdefault(phase, {"calls": 0, **TransferStats().as_dict()})
            tot["calls"] += 1
            for k, v in (self.backend.stats - before).as_dict().items():
                tot[k] += v

    def _read_pending(self) -> None:
        """One read for the loss and gradient norm of every step since the last read: record the
        losses, and stop (or count skips) where they were not finite."""
        if not self._pending:
            return
        be, cfg = self.backend, self.config
        with be.activate():
            vals = be.to_host(be.xp.stack([a for pair in self._pending for a in pair])).tolist()
        first = self.step - len(self._pending) + 1
        self._pending = []
        for k in range(len(vals) // 2):
            step, loss_v, norm_v = first + k, vals[2 * k], vals[2 * k + 1]
            try:
                check_finite(step, loss_v, norm_v, skipping=cfg.skip_nonfinite)
            except NonFiniteError as e:
                if not cfg.skip_nonfinite:
                    raise
                self.skipped += 1
                self._consecutive += 1
                self.losses.append(None)
                self.log.warn(f"{e} -- update skipped ({self.skipped} so far)")
                if self._consecutive >= MAX_CONSECUTIVE_SKIPS:
                    raise NonFiniteError(f"{self._consecutive} steps in a row were non-finite (last: step {step}); "
                                         f"the weights themselves have diverged. Lower lr (--lr) and start "
                                         f"again") from None
                continue
            self._consecutive = 0
            self.losses.append(loss_v)
        if self.losses and self.losses[-1] is not None:
            self.log.show_loss(self.losses[-1])
        self._record_step(vals[-2], vals[-1], len(vals) // 2)

    def _record_step(self, loss: float, norm: float, n: int) -> None:
        """log.jsonl's record of a read (every log_interval): the last step's loss, lr and gradient norm, the
        tokens/s over the n steps since the last read, the seconds since the loop began."""
        now = time.perf_counter()
        start, last = self._read_clock
        self._read_clock = (start, now)
        tok_per_s = self.config.batch_size * self.block_size * n / max(now - last, 1e-9)
        self.log.record({"event": "step", "step": self.step, "loss": loss if is_finite(loss) else None,
                         "lr": self.schedule(self.step - 1), "grad_norm": norm if is_finite(norm) else None,
                         "tok_per_s": round(tok_per_s), "elapsed": round(now - start, 3)})

    def _eval_and_log(self, sec_per_step: float, tok_per_s: float, lr: float | None = None) -> None:
        with self._counting("eval"):
            ev = self.evaluate()
        lr = self.schedule(self.step) if lr is None else lr
        rec = {"step": self.step, "train": ev["train"], "val": ev["val"], "lr": lr,
               "ms_per_step": round(sec_per_step * 1000, 2), "tok_per_s": round(tok_per_s),
               "skipped": self.skipped}
        self.evals.append(rec)
        self.last_eval = rec
        self.log.record({"event": "eval", **rec})
        self.log.eval_line(rec, self.config.steps)

    def _plot(self) -> bool:
        return self.log.plot(self.losses, self.evals, title=self.model.describe(), run_id=self.run_id)

    def _print_samples(self) -> None:
        text_data = self.tokenizer.bos_id is None
        n = 1 if text_data else self.config.samples
        self.log.print("samples (temperature 1.0):")
        for s in self.generate(num_samples=n, seed=self.config.seed):
            self.log.print("  " + s.replace("\n", "\n  ") if text_data else "  " + s)

    # -- library conveniences ----------------------------------------------------------------------
    def generate(self, prompt: str = "", num_samples: int = 5, max_new_tokens: int | None = None,
                 temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                 seed=0) -> list:
        """Samples as strings: whole lines for line datasets (names), continuations for text."""
        return complete(self.model, self.tokenizer, prompt, num_samples, max_new_tokens, temperature, top_k,
                        top_p, seed)
