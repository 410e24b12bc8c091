"""The Trainer: one run from its settings to a trained model, read top to bottom.

    from tinyllm import Trainer, TrainConfig
    t = Trainer(TrainConfig(data="names", steps=500))
    t.fit()
    print(t.generate(num_samples=5))

__init__ checks everything that can be wrong with the inputs (settings,
device, data file, the checkpoint to resume, a model too large for the
memory) before the output directory is touched; fit() then creates it, takes
the run lock and runs the loop: `_step` per batch, a read of the losses every
`log_interval` steps (reads.py), an evaluation (evaluation.py) and a checkpoint
every `eval_interval`. Distributed training is the `self.world` and
`self.parallel` lines, marked [dist] (tinyllm/distributed/): with one process
they are no-ops. The other rooms: run_data.py, outdir.py, resume.py (checkpoint
state, resuming), log.py (console, progress bar, log.jsonl, loss.png).

A library run given no `out` gets a fresh runs/<date>-<time>-<run id>, never
./out, where the CLI's runs live. A SIGINT or SIGTERM finishes the step, saves
and raises TrainingInterrupted (the CLI exits 130 / 143). Host <-> device
traffic per step is one copy in (the batch's start offsets); `transfers`
counts what crossed, per phase.
"""
from __future__ import annotations

import signal
import time

from backends import get_backend

from ..data.shards import batcher_for
from ..distributed import DataParallel, collective_errors, current_world, rank_device, rank_log
from ..errors import ConfigError, NonFiniteError, OutOfMemory, TrainingInterrupted
from ..guards import oom_message, signal_name
from ..models.build import build_checked
from ..nn import Dropout
from ..optim import make_optimizer, make_schedule
from ..sample import complete
from . import evaluation, health, resume
from .checkpoint import new_run_id, prepare_output_dir, save_checkpoint
from .config import TrainConfig
from .init_from import pretrained_model
from .lock import RunLock
from .log import RunLog, describe_backend
from .outdir import check_fresh_out, with_out
from .reads import counting, read_pending
from .resume import load_trained, model_from_meta  # noqa: F401  (re-exported: tinyllm.train.trainer.load_trained)
from .run_data import check_lengths, data_info, describe_data, load_run_data


class Trainer:
    """Train a model from a TrainConfig; the CLI and library users share this class.

    verbose=False keeps it quiet (tests); log lines go to stdout, warnings to stderr.
    """

    def __init__(self, config: TrainConfig | None = None, verbose: bool = True, **overrides):
        self.world = current_world()  # [dist] this process: one of one, or a rank of `mpiexec -n N`
        with collective_errors(self.world):  # [dist] an error on one rank is raised on every rank
            cfg = config if config is not None else TrainConfig()
            if overrides:
                try:
                    cfg = cfg.replace(**overrides)
                except TypeError as e:
                    raise ConfigError(f"unknown training setting: {e}") from None
            cfg = cfg.resolve().validate()  # resuming: the checkpoint's settings for those not given
            self.run_id, self._replaces = new_run_id(), None  # the id every file this run writes carries
            cfg = with_out(cfg, self.run_id)
            self.out, self.verbose = cfg.out, verbose and self.world.root  # [dist] rank 0 prints
            self.log = rank_log(RunLog, self.world, cfg.out, verbose)  # [dist] and writes
            self.backend = get_backend(rank_device(cfg.device, self.world))  # DeviceError, or cpu with a warning
            self.config, self.dataset, self.lines_guessed = load_run_data(cfg)
            cfg, ds = self.config, self.dataset
            self.tokenizer, self.data_info = ds.tokenizer, data_info(cfg, ds)
            if cfg.resume and self.world.root:  # [dist] a live run there: say that, before ranks compare
                RunLock(cfg.out).check()
            ckpt = resume.read_resume(self) if cfg.resume else None
            self.model_name = cfg.model
            self.model = self._build_model(ckpt[1] if ckpt else None)
            self.block_size = self.model.config.block_size
            check_lengths(cfg, ds, self.block_size)
            if ckpt is None and self.world.root:  # [dist] rank 0 alone writes
                self._replaces = check_fresh_out(cfg)
            self.optimizer = make_optimizer(cfg.optimizer, self.model, cfg.peak_lr, (cfg.beta1, cfg.beta2),
                                            cfg.weight_decay)
            self.schedule = make_schedule(cfg.schedule, cfg.peak_lr, cfg.steps, cfg.warmup_steps, cfg.min_lr)
            self.rng = self.backend.rng(cfg.seed)  # batch draws
            self.dropouts = [m for m in self.model.modules() if isinstance(m, Dropout)]
            vocab = self.model.config.vocab_size  # the data's ids are checked against it before they go over
            self.train_batches = batcher_for(ds.train, self.backend, self.block_size, vocab, "the training data")
            self.val_batches = batcher_for(ds.val, self.backend, self.block_size, vocab, "the validation data")
            self.step, self.skipped = 0, 0
            self.losses: list = []   # training loss per step (None where non-finite)
            self.evals: list = []    # {"step", "train", "val", "lr", ...} per evaluation
            self.last_eval: dict | None = None
            self.transfers: dict = {}  # phase -> {"calls", h2d_calls, h2d_bytes, d2h_calls, d2h_bytes, syncs}
            self._pending: list = []   # (loss, grad norm) device scalars of the steps not read yet
            self._consecutive = 0      # non-finite steps in a row (with skip_nonfinite)
            self.after_eval: list = []  # f(trainer) after each evaluation's checkpoint (report/live.py)
            if ckpt is not None:
                resume.restore(self, *ckpt)
        self.parallel = DataParallel(self.world, self.backend)  # [dist] rows of a batch, the Allreduce, who writes
        self.parallel.agree(self)  # [dist] every rank: rank 0's settings and data, then its weights

    def _build_model(self, meta: dict | None):
        cfg = self.config
        if meta is not None:  # resuming: the checkpoint's model
            return model_from_meta(meta, self.backend, cfg.out)
        if cfg.init_from:
            return pretrained_model(cfg, self.backend)
        return build_checked(cfg.model, cfg.model_config(self.tokenizer.vocab_size), self.backend, seed=cfg.seed)

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
                with counting(self, "checkpoint"):
                    self.write_checkpoint(*self.state())
                self._replaces = None

    def write_checkpoint(self, tensors: dict, meta: dict) -> None:
        """Save (tensors, meta) in out/ crash-safely ([dist] also a stop snapshot's writer, distributed/stop.py)."""
        save_checkpoint(self.out, tensors, meta, run_id=self.run_id, replaces=self._replaces)

    def describe(self) -> str:
        ds = self.dataset
        return (f"device {describe_backend(self.backend)} | {self.model.describe()}: "
                f"{self.model.num_parameters() / 1e6:.2f}M parameters | data "
                f"{describe_data(self.config, ds, self.lines_guessed)}: {len(ds.train):,} train / "
                f"{len(ds.val):,} val tokens, vocab {self.tokenizer.vocab_size} | out {self.out}/"
                + self.parallel.describe())  # [dist]

    # -- evaluation ---------------------------------------------------------------------------
    def _loss(self, x, y):
        """The model's mean loss on a batch (the one place the trainer calls forward)."""
        return self.model(x, y)[1]

    def evaluate(self, iters: int | None = None, batch_size: int | None = None) -> dict:
        """Mean loss over `iters` batches of each split (the same batches every call): {"train", "val"}."""
        return evaluation.evaluate(self, iters or self.config.eval_iters, batch_size or self.config.batch_size)

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
                with self.parallel.guard(self) as guard:  # [dist] ranks stop together
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
            evaluation.eval_and_log(self, 0.0, 0)
        self.model.train()
        mark, n = time.perf_counter(), 0  # steps since the last log line, timed from `mark`
        self._read_clock = (mark, mark)  # (the loop's start, the last read): the step records' timing
        while self.step < end:
            health.keep_weights(self, end)  # a device copy of the weights before a step that ends in an eval
            with counting(self, "step"), self.backend.activate():
                lr = self._step()
            self.step += 1
            n += 1
            self.log.advance()
            evaluating = self.step % cfg.eval_interval == 0 or self.step == end
            if evaluating or guard.requested or self.step % cfg.log_interval == 0:
                with counting(self, "log"):
                    read_pending(self)  # NonFiniteError before anything is saved
            if evaluating:
                busy = max(time.perf_counter() - mark, 1e-9)  # the read above waited for the device
                evaluation.eval_and_log(self, busy / n, cfg.batch_size * self.block_size * n / busy, lr)
                self.save()
                for hook in self.after_eval:  # before the clock restarts: not counted in ms / step
                    hook(self)
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
