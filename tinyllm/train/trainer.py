"""The Trainer: device choice, the training loop, evaluation, logging, checkpoints.

    from tinyllm import Trainer, TrainConfig
    t = Trainer(TrainConfig(data="names", steps=500))
    t.fit()
    print(t.generate(num_samples=5))

Everything that can be wrong with the inputs (settings, device, data file,
checkpoint to resume, a model too large for the memory) is checked in
__init__, before the output directory is touched; fit() then creates it,
takes the run lock and trains.

Output goes to config.out; left as None (the library's default) a run gets a
fresh directory runs/<date>-<time>-<run id>, so a library run never writes
into ./out, where the CLI's runs live. A SIGINT or SIGTERM finishes the
step, saves and raises TrainingInterrupted (the CLI exits 130 / 143). When
stdout is closed (`tinyllm train | head`), training goes on and its lines
are dropped: log.jsonl still gets every record.

Resuming is exact: the checkpoint holds the weights, the optimizer moments and
step count, the batch RNG state and the step (the schedule position, and the
counter of the on-device generator that makes dropout masks), so on one backend
N straight steps and N/2 + resume + N/2 give identical losses and weights.

Host <-> device traffic per step is one copy in (the batch's start offsets);
the loss and gradient norm stay on the device and are read together, for all
steps since the last read, every `log_interval` steps (and before evaluating
or saving). `transfers` counts what crossed, per phase.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import sys
import time

from backends import TransferStats, get_backend

from ..data import DATASETS, Batcher, DataError, load_dataset, tokenizer_from_dict
from ..models import build_model, config_for
from ..nn import Dropout
from ..optim import SGD, Adam, AdamW, decay_groups, make_schedule
from ..sample import complete
from ..tensor import no_grad
from ..memory import shortfall
from ..models import parameter_count
from .checkpoint import (CheckpointError, OutputDirError, check_meta, check_tensors, check_tokenizer,
                         committed_file, has_checkpoint, load_checkpoint, new_run_id, output_dir_error,
                         prepare_output_dir, run_files, save_checkpoint)
from .config import SIZE_FIELDS, ConfigError, TrainConfig
from .guards import (InterruptGuard, Interrupted, NonFiniteError, check_finite, oom_message, point_at_devnull,
                     signal_name)
from .init_from import data_tokenizer, pretrained_model
from .lock import RunLock
from .plot import MISSING_NOTE, PLOT_NAME, plot_losses
from ..errors import OutOfMemory, TrainingInterrupted

LOG_NAME = "log.jsonl"
MAX_CONSECUTIVE_SKIPS = 20  # with --skip-nonfinite: give up when the weights themselves went bad
BACKEND_WORDS = {"cpu": "NumPy", "strict": "array-api-strict", "cuda": "CuPy"}
RUNS_DIR = "runs"  # where a library run without config.out gets its fresh directory
# bytes of memory per parameter in training: weights, gradients and two AdamW moments, float32
TRAIN_BYTES_PER_PARAM = 16


def describe_backend(backend) -> str:
    words = BACKEND_WORDS.get(backend.kind, backend.kind)
    fast = " + fused kernels" if backend.fast is not None else ""
    return f"{backend.name} ({words} backend{fast})"


def _fingerprint(ds) -> str:
    """A hash of the token streams (their bytes: no text copy of a large dataset)."""
    h = hashlib.sha256()
    for split in (ds.train, ds.val):
        h.update(memoryview(split).cast("B"))
        h.update(b"|")
    return h.hexdigest()[:16]


def build_checked(name: str, mcfg, backend, seed: int = 0):
    """build_model, but a model too large for the memory is refused before any allocation
    (OutOfMemory names the parameters and the memory), and an allocation failing while it is built
    becomes OutOfMemory too."""
    n = parameter_count(name, mcfg)
    short = shortfall(TRAIN_BYTES_PER_PARAM * n) if backend.kind != "cuda" else None
    if short:
        raise OutOfMemory(f"the model would have {n:,} parameters; training it takes {short} "
                          f"({TRAIN_BYTES_PER_PARAM} bytes a parameter: weights, gradients, optimizer state); "
                          f"use a smaller model (--n-layer, --n-embd)")
    try:
        return build_model(name, mcfg, device=backend, seed=seed)
    except Exception as e:
        msg = oom_message(e)
        if msg is None:
            raise
        raise OutOfMemory(f"building the model ({n:,} parameters): {msg}") from None


def make_optimizer(cfg: TrainConfig, model):
    groups = decay_groups(model, cfg.weight_decay)  # no decay on biases and norm gains
    if cfg.optimizer == "adamw":
        return AdamW(groups, lr=cfg.peak_lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return Adam(groups, lr=cfg.peak_lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay)
    return SGD(groups, lr=cfg.peak_lr, momentum=cfg.beta1, weight_decay=cfg.weight_decay)


def model_from_meta(meta: dict, device, out_dir: str | None = None):
    """The (untrained) model a checkpoint's meta describes, on `device`."""
    try:
        name, fields = meta["model"], dict(meta["config"])
        return build_checked(name, config_for(name, **fields), device)
    except (KeyError, TypeError, ValueError) as e:
        where = f" in {out_dir!r}" if out_dir is not None else ""
        raise CheckpointError(f"checkpoint{where}: its model description is unusable ({e}); "
                              f"train a new one (tinyllm train --out DIR)") from None


def load_trained(out_dir: str, device="auto"):
    """(model, tokenizer, meta) from the checkpoint in out_dir, on any device
    (a checkpoint trained on a GPU loads on the CPU and the other way round)."""
    tensors, meta = load_checkpoint(out_dir)
    check_meta(meta, out_dir, resume=False)  # the tokenizer too, and that it fits the model
    tokenizer = tokenizer_from_dict(meta["tokenizer"])
    model = model_from_meta(meta, get_backend(device), out_dir)
    load_weights(model, tensors)
    model.eval()
    return model, tokenizer, meta


def load_weights(model, tensors: dict) -> None:
    """Copy a checkpoint's "model.*" tensors into model (CheckpointError if names or shapes differ)."""
    weights = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    check_tensors(weights, {n: p.shape for n, p in model.named_parameters()})
    model.load_state_dict(weights)


class Trainer:
    """Train a model from a TrainConfig; the CLI and library users share this class.

    verbose=False keeps it quiet (tests); log lines go to stdout, warnings to stderr.
    """

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
        self.config = cfg
        self.verbose = verbose
        self._bar = None
        self._closed = set()  # "stdout" / "stderr" once a write to it failed (a closed pipe)
        self.out = cfg.out
        self.backend = get_backend(cfg.device)  # DeviceError, or cpu with one warning line
        # the split never depends on --seed; the tokenizer is the data's own, a BPE trained on it, or --init-from's
        self.dataset = ds = load_dataset(cfg.data, seed=0, lines=cfg.lines, tokenizer=data_tokenizer(cfg),
                                         raw_text=cfg.raw_text)
        if cfg.data not in DATASETS:  # stored resolved: --resume works from any directory
            self.config = cfg = cfg.replace(data=os.path.abspath(cfg.data))
        self.tokenizer = ds.tokenizer
        self.data_info = {"spec": cfg.data, "lines": cfg.lines, "name": ds.name, "train_tokens": len(ds.train),
                          "val_tokens": len(ds.val), "fingerprint": _fingerprint(ds), **ds.info}
        ckpt = self._read_resume() if cfg.resume else None
        if ckpt is not None:
            self.model_name = ckpt[1]["model"]
            self.model = model_from_meta(ckpt[1], self.backend, cfg.out)
            self._check_resume_sizes(ckpt[1])
        else:
            self.model_name = cfg.model
            if cfg.init_from:
                self.model = pretrained_model(cfg, self.backend)
            else:
                mcfg = cfg.model_config(self.tokenizer.vocab_size)
                self.model = build_checked(cfg.model, mcfg, self.backend, seed=cfg.seed)
        self.block_size = self.model.config.block_size
        self._check_lengths(self.block_size)
        if ckpt is None:
            self._check_fresh_out()
        self.optimizer = make_optimizer(cfg, self.model)
        self.schedule = make_schedule(cfg.schedule, cfg.peak_lr, cfg.steps, cfg.warmup_steps, cfg.min_lr)
        self.rng = self.backend.rng(cfg.seed)  # batch draws
        self.dropouts = [m for m in self.model.modules() if isinstance(m, Dropout)]
        self.train_batches = Batcher(ds.train, self.backend, self.block_size)
        self.val_batches = Batcher(ds.val, self.backend, self.block_size)
        self.step = 0
        self.losses: list = []   # training loss per step (None where non-finite)
        self.evals: list = []    # {"step", "train", "val", "lr", ...} per evaluation
        self.skipped = 0
        self.last_eval: dict | None = None
        self.transfers: dict = {}  # phase -> {"calls", h2d_calls, h2d_bytes, d2h_calls, d2h_bytes, syncs}
        self._pending: list = []   # (loss, grad norm) device scalars of the steps not read yet
        self._consecutive = 0      # non-finite steps in a row (with skip_nonfinite)
        if ckpt is not None:
            self._apply_checkpoint(*ckpt)
            if self.step >= cfg.steps:
                raise ConfigError(f"the checkpoint in {self.out!r} is already at step {self.step} of --steps "
                                  f"{cfg.steps}; pass a larger --steps to train on")

    # -- validation ---------------------------------------------------------------------
    def _check_lengths(self, block: int) -> None:
        ds, cfg = self.dataset, self.config
        n = min(len(ds.train), len(ds.val))
        if n < block + 1:
            src = f"dataset {cfg.data!r}" if cfg.data in DATASETS else f"data file {cfg.data!r}"
            split = "training (90%)" if len(ds.train) <= len(ds.val) else "validation (10%)"
            raise DataError(f"{src} is too short for block_size {block}: its {split} split has {n} tokens and "
                            f"needs at least block_size + 1 = {block + 1}; use a longer file or a smaller --block-size")

    def _check_fresh_out(self) -> None:
        """A new run never replaces or mixes with an earlier one unless asked (--overwrite)."""
        cfg = self.config
        found = run_files(cfg.out) if os.path.isdir(cfg.out) else []
        if not found:
            return
        RunLock(cfg.out).check()  # a live run there: say that, not "holds a run"
        if not cfg.overwrite:
            how = "pass --resume to continue it, another --out," if "checkpoint.json" in found else \
                "pass another --out,"
            raise OutputDirError(f"output directory {cfg.out!r} already holds a training run ({', '.join(found)}); "
                                 f"{how} or --overwrite to replace it")
        self._replaces = committed_file(cfg.out)[0] or "legacy"

    def _read_resume(self):
        cfg = self.config
        if not has_checkpoint(cfg.out) and not os.path.isdir(cfg.out):
            raise CheckpointError(f"cannot resume: output directory {cfg.out!r} does not exist; "
                                  f"check --out, or train without --resume to start a new run")
        tensors, meta = load_checkpoint(cfg.out)  # CheckpointError for missing / damaged
        check_meta(meta, cfg.out, resume=True)  # every entry of a hand-edited checkpoint.json, by type and range
        check_tokenizer(meta, self.tokenizer.to_dict())  # resuming with other data
        if meta["model"] != cfg.model:
            raise CheckpointError(f"the checkpoint in {cfg.out!r} holds a {meta['model']!r} model, the settings ask "
                                  f"for {cfg.model!r}; resume with --model {meta['model']} or use another --out")
        fp = (meta.get("data") or {}).get("fingerprint")
        if fp is not None and fp != self.data_info["fingerprint"]:
            self._warn("the data differs from the data the checkpoint was trained on (same tokenizer); "
                       "resuming, but this is not an exact continuation")
        self.run_id = committed_file(cfg.out)[0] or self.run_id  # continue writing as that run
        return tensors, meta

    def _check_resume_sizes(self, meta: dict) -> None:
        saved = meta["config"]
        for k in SIZE_FIELDS:
            v = getattr(self.config, k)
            if v is not None and k in saved and saved[k] != v:
                raise ConfigError(f"the checkpoint in {self.out!r} was trained with {k}={saved[k]}, the settings "
                                  f"ask for {k}={v}; drop --{k.replace('_', '-')} when resuming or use another --out")

    # -- checkpoint state ------------------------------------------------------------------
    def state(self) -> tuple:
        """(tensors, meta) for save_checkpoint: host arrays + JSON-able metadata.

        The optimizer keeps every parameter, and each state slot, in one flat
        array: a checkpoint is one read per flat array, split on the host."""
        be, opt = self.backend, self.optimizer
        flat = opt.flat
        index = {id(p): i for i, p in enumerate(flat.params)}
        weights = flat.split_host(be.to_host(flat.data))
        tensors = {f"model.{n}": weights[index[id(p)]] for n, p in self.model.named_parameters()}
        for k, a in opt.state.items():
            tensors.update({f"optim.{i}.{k}": h for i, h in enumerate(flat.split_host(be.to_host(a)))})
        from .. import __version__

        meta = {
            "model": self.model_name, "config": self.model.config.to_dict(),
            "tokenizer": self.tokenizer.to_dict(), "step": self.step,
            "train": {**self.config.to_dict(), "resume": False, "overwrite": False}, "data": self.data_info,
            "rng": {"batch": self.rng.get_state(), "device": "philox4x32-10, counter = step"},
            "optim": {"kind": self.config.optimizer, "step_count": self.optimizer.step_count},
            "log": self.evals, "losses": self.losses, "skipped": self.skipped,
            "device": self.backend.name, "tinyllm": __version__,
        }
        return tensors, meta

    def _apply_checkpoint(self, tensors: dict, meta: dict) -> None:
        load_weights(self.model, tensors)
        opt = {k[len("optim."):]: v for k, v in tensors.items() if k.startswith("optim.")}
        try:
            if meta["optim"].get("kind", self.config.optimizer) != self.config.optimizer:
                raise ValueError(f"it used optimizer {meta['optim']['kind']!r}, the settings ask for "
                                 f"{self.config.optimizer!r}")
            self.optimizer.load_state_arrays(opt, meta["optim"]["step_count"])
            self.rng.set_state(meta["rng"]["batch"])
            if any(st is not None for st in meta["rng"].get("dropout") or []):
                self._warn("this checkpoint is from a tinyllm that drew dropout masks on the host; resuming, "
                           "but the masks now come from the on-device generator: not an exact continuation")
            self.step = int(meta["step"])
            self.losses = list(meta.get("losses", []))
            self.evals = list(meta.get("log", []))
            self.skipped = int(meta.get("skipped", 0))
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"the checkpoint in {self.out!r} cannot be resumed: {e}; "
                                  f"resume with the settings it was trained with, or start a new run") from None

    def save(self) -> None:
        save_checkpoint(self.out, *self.state(), run_id=self.run_id, replaces=self._replaces)
        self._replaces = None

    # -- output -----------------------------------------------------------------------------
    def _print(self, line: str) -> None:
        if not self.verbose or "stdout" in self._closed:
            return
        try:
            if getattr(self, "_bar", None) is not None:
                self._bar.write(line, file=sys.stdout)
            else:
                print(line, flush=True)
        except BrokenPipeError:  # `tinyllm train | head -3`: go on training, drop the lines
            self._stream_closed("stdout")
            self._warn("stdout was closed (e.g. by `| head`); training goes on without printing, "
                       f"every record still goes to {os.path.join(self.out, LOG_NAME)}")

    def _warn(self, line: str) -> None:
        if "stderr" in self._closed:
            return
        try:
            print(f"warning: {line}", file=sys.stderr, flush=True)
        except BrokenPipeError:
            self._stream_closed("stderr")

    def _stream_closed(self, name: str) -> None:
        self._closed.add(name)
        point_at_devnull(getattr(sys, name))

    def _start_new_log(self) -> None:
        try:
            open(os.path.join(self.out, LOG_NAME), "w", encoding="utf-8").close()
        except OSError as e:
            raise output_dir_error(self.out, e, f"write the training log {LOG_NAME}") from None

    def _log_record(self, rec: dict) -> None:
        rec = {"time": round(time.time(), 3), **rec}
        try:  # disk full / read-only: one clear line, not a traceback (issue 6)
            with open(os.path.join(self.out, LOG_NAME), "a", encoding="utf-8") as f:
                f.write(json.dumps(rec) + "\n")
        except OSError as e:
            raise output_dir_error(self.out, e, f"write the training log {LOG_NAME}") from None

    def describe(self) -> str:
        m, c = self.model, self.model.config
        if self.model_name == "gpt":
            arch = f"gpt {c.n_layer} layers x {c.n_head} heads x {c.n_embd} embd, block {c.block_size}"
        elif self.model_name == "mlp":
            arch = f"mlp context {c.block_size}, {c.n_embd} embd, {c.n_hidden} hidden"
        else:
            arch = "bigram"
        ds = self.dataset
        cleaned = f" ({', '.join(ds.info['cleaned'])})" if ds.info.get("cleaned") else ""
        return (f"device {describe_backend(self.backend)} | {arch}: {m.num_parameters() / 1e6:.2f}M parameters | "
                f"data {ds.name}{cleaned}: {len(ds.train):,} train / {len(ds.val):,} val tokens, vocab "
                f"{self.tokenizer.vocab_size} | out {self.out}/")

    # -- evaluation ---------------------------------------------------------------------------
    def evaluate(self, iters: int | None = None, batch_size: int | None = None) -> dict:
        """Mean loss over `iters` batches of each split (the same batches every call); the losses are
        summed on the device and read once."""
        iters = iters or self.config.eval_iters
        B = batch_size or self.config.batch_size
        be = self.backend
        xp = be.xp
        was = self.model.training
        self.model.eval()
        try:
            with no_grad(), be.activate():
                sums = []
                for k, batches in enumerate((self.train_batches, self.val_batches)):
                    rng = be.rng(10_000 + k)
                    losses = [self.model(*batches.batch(B, rng))[1].data for _ in range(iters)]
                    sums.append(xp.sum(xp.astype(xp.stack(losses), xp.float64)))
                train, val = be.to_host(xp.stack(sums)).tolist()
        finally:
            self.model.train(was)
        return {"train": train / iters, "val": val / iters}

    # -- training ---------------------------------------------------------------------------------
    def fit(self, until: int | None = None) -> "Trainer":
        """Train to config.steps (or stop early at step `until`, checkpointing there)."""
        cfg = self.config
        end = cfg.steps if until is None else max(self.step, min(int(until), cfg.steps))
        prepare_output_dir(self.out)  # OutputDirError: unwritable / a file
        with RunLock(self.out):
            if self._replaces is not None and self.step == 0 and not self.evals:
                self._start_new_log()  # --overwrite: the earlier run's log is not continued
            self._print(self.describe())
            if self.step > 0:
                self._print(f"resuming from step {self.step}/{cfg.steps}")
            self._log_record({"event": "start", "step": self.step, "device": self.backend.name,
                              "describe": self.describe(), "config": cfg.to_dict()})
            try:
                with InterruptGuard() as guard:
                    self._loop(end, guard)
            except NonFiniteError as e:
                self._log_record({"event": "nonfinite", "step": self.step, "error": str(e)})
                raise
            except TrainingInterrupted:
                raise
            except Exception as e:
                msg = oom_message(e)
                if msg is None:
                    raise
                self._log_record({"event": "oom", "step": self.step, "error": msg})
                raise OutOfMemory(msg) from None
            finally:
                self._close_bar()
            self._log_record({"event": "end", "step": self.step, "skipped": self.skipped, "transfers": self.transfers})
            if cfg.transfer_stats:
                self._print_transfers()
            plotted = self._plot()
            if self.step >= cfg.steps and cfg.samples and self.verbose and "stdout" not in self._closed:
                self._print_samples()
        self._print(self._saved_line(plotted))
        return self

    def _saved_line(self, plotted: bool) -> str:
        files = ", ".join(["checkpoint.json", LOG_NAME] + ([PLOT_NAME] if plotted else []))
        return (f"saved in {self.out}/ (step {self.step}: {files}); sample with: tinyllm sample --out {self.out}"
                + ("" if self.step >= self.config.steps else
                   f"; continue with: tinyllm train --resume --out {self.out}"))

    def _open_bar(self, end: int):
        self._bar = None
        if self.verbose and sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=end, initial=self.step, unit="step", dynamic_ncols=True, leave=False)

    def _close_bar(self):
        if getattr(self, "_bar", None) is not None:
            self._bar.close()
        self._bar = None

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

    def _loop(self, end: int, guard) -> None:
        cfg, model, opt = self.config, self.model, self.optimizer
        be = self.backend
        xp = be.xp
        tokens_per_step = cfg.batch_size * self.block_size
        clip = cfg.grad_clip if cfg.grad_clip > 0 else None
        self._open_bar(end)
        if self.step == 0 and not self.evals:
            self._eval_and_log(0.0, 0)
        model.train()
        mark, n = time.perf_counter(), 0  # steps since the last log line, timed from `mark`
        while self.step < end:
            with self._counting("step"), be.activate():
                opt.lr = lr = self.schedule(self.step)
                for d in self.dropouts:  # the masks of step N depend on N alone: exact resume
                    if d.stream is not None:
                        d.stream.counter = self.step
                x, y = self.train_batches.batch(cfg.batch_size, self.rng)
                opt.zero_grad()
                _, loss = model(x, y)
                loss.backward()
                norm = opt.clip_grad_norm(clip)
                if cfg.skip_nonfinite:  # decided on the device: no read
                    opt.step(only_if=xp.isfinite(loss.data) & xp.isfinite(norm))
                else:
                    opt.step()
                self._pending.append((loss.data, norm))
            self.step += 1
            n += 1
            if self._bar is not None:
                self._bar.update(1)
            evaluating = self.step % cfg.eval_interval == 0 or self.step == end
            if evaluating or guard.requested or self.step % cfg.log_interval == 0:
                with self._counting("log"):
                    self._read_pending()  # NonFiniteError before anything is saved
            if evaluating:
                busy = max(time.perf_counter() - mark, 1e-9)  # the read above waited for the device
                self._eval_and_log(busy / n, tokens_per_step * n / busy, lr)
                with self._counting("checkpoint"):
                    self.save()
                mark, n = time.perf_counter(), 0
            if guard.requested:
                with self._counting("checkpoint"):
                    self.save()
                self._plot()
                what = "interrupted" if guard.signum == signal.SIGINT else f"stopped by {signal_name(guard.signum)}"
                raise TrainingInterrupted(f"{what} at step {self.step}/{cfg.steps}; checkpoint saved in "
                                          f"{self.out}/; continue with: tinyllm train --resume --out {self.out}",
                                          guard.signum)

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
                self._warn(f"{e} -- update skipped ({self.skipped} so far)")
                if self._consecutive >= MAX_CONSECUTIVE_SKIPS:
                    raise NonFiniteError(f"{self._consecutive} steps in a row were non-finite (last: step {step}); "
                                         f"the weights themselves have diverged. Lower --lr and start again") from None
                continue
            self._consecutive = 0
            self.losses.append(loss_v)
        if self._bar is not None and self.losses and self.losses[-1] is not None:
            self._bar.set_postfix(loss=f"{self.losses[-1]:.3f}", refresh=False)

    def _eval_and_log(self, sec_per_step: float, tok_per_s: float, lr: float | None = None) -> None:
        with self._counting("eval"):
            ev = self.evaluate()
        lr = self.schedule(self.step) if lr is None else lr
        rec = {"step": self.step, "train": ev["train"], "val": ev["val"], "lr": lr,
               "ms_per_step": round(sec_per_step * 1000, 2), "tok_per_s": round(tok_per_s),
               "skipped": self.skipped}
        self.evals.append(rec)
        self.last_eval = rec
        self._log_record({"event": "eval", **rec})
        line = f"step {self.step}/{self.config.steps} | loss {ev['train']:.4f} | val {ev['val']:.4f} | lr {lr:.1e}"
        if self.step > 0 and sec_per_step > 0:
            line += f" | {sec_per_step * 1000:.0f} ms/step | {tok_per_s:,.0f} tok/s"
        if self.skipped:
            line += f" | skipped {self.skipped}"
        self._print(line)

    def _print_transfers(self) -> None:
        """What crossed between host and device this run, per phase and per call of it."""
        self._print(f"host <-> device on {self.backend.name} (per call of each phase):")
        for phase, t in self.transfers.items():
            n = t["calls"]
            self._print(f"  {phase:<10} x{n:<6} host->device {t['h2d_calls'] / n:g} copies, {t['h2d_bytes'] / n:,.0f} B | "
                        f"device->host {t['d2h_calls'] / n:g} reads, {t['d2h_bytes'] / n:,.0f} B | "
                        f"syncs {t['syncs'] / n:g}")

    def _plot(self) -> bool:
        path = plot_losses(self.out, [x if x is not None else float("nan") for x in self.losses], self.evals,
                           title=self.describe().split(" | ")[1])
        if path is None:
            self._print(MISSING_NOTE.format(path=os.path.join(self.out, PLOT_NAME)))
        return path is not None

    def _print_samples(self) -> None:
        text_data = self.tokenizer.bos_id is None
        n = 1 if text_data else self.config.samples
        self._print("samples (temperature 1.0):")
        for s in self.generate(num_samples=n, seed=self.config.seed):
            self._print("  " + s.replace("\n", "\n  ") if text_data else "  " + s)

    # -- library conveniences ----------------------------------------------------------------------
    def generate(self, prompt: str = "", num_samples: int = 5, max_new_tokens: int | None = None,
                 temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                 seed=0) -> list:
        """Samples as strings: whole lines for line datasets (names), continuations for text."""
        return complete(self.model, self.tokenizer, prompt, num_samples, max_new_tokens, temperature, top_k,
                        top_p, seed)
