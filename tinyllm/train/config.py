"""TrainConfig: every setting of a training run, one dataclass (the CLI flags map onto it).

Resuming is one policy, here: `resolve()` fills every setting the caller did
not give (`config.given`) from the settings saved in the run's checkpoint.json,
so `Trainer(TrainConfig(resume=True, out=...))` and `tinyllm train --resume`
continue with the same lr, batch size and schedule.

Model sizes left as None take MODEL_DEFAULTS' few per-model training values,
then the model config's own defaults (model_default() says which applies: the
CLI's help text is generated from it).
"""
from __future__ import annotations

import inspect
import math
import os
from dataclasses import asdict, dataclass, field, fields, replace

from ..data import DATASETS
from ..data.bpe import MAX_VOCAB, MIN_VOCAB
from ..data.files import path_problem, read_regular_file
from ..fieldtypes import field_types, type_problem
from ..models import MODELS, config_for
from ..optim import SCHEDULES
from ..errors import CheckpointError, ConfigError, DataError
from .checkpoint import read_meta


# The training settings per model that are not the model config's own: the peak lr, and the bigram's
# batch window (the model sees one token, but a window of 8 gives each row 8 predictions a step). Model
# sizes come from the model configs alone (GPTConfig() is what `tinyllm train` builds), tuned so that
# `tinyllm train` with no arguments reaches val loss <= 2.10 on the names in about two minutes on a laptop.
MODEL_DEFAULTS = {"gpt": {"lr": 2e-3}, "mlp": {"lr": 1e-2}, "bigram": {"block_size": 8, "lr": 5e-2}}
DEFAULT_LR = 1e-3  # a model missing from MODEL_DEFAULTS
TOKENIZERS = ("char", "bpe")
SIZE_FIELDS = ("n_layer", "n_head", "n_embd", "block_size", "dropout", "bias")
OPTIMIZERS = ("adamw", "adam", "sgd")
NOT_RESUMED = ("out", "resume", "overwrite", "device")  # a resumed run never takes these from its checkpoint
MAX_TOML_BYTES = 1 << 20


@dataclass
class TrainConfig:
    """Every setting of a run. `given` (not a field) names the settings passed to the constructor,
    from_dict or replace: the ones a resumed run keeps instead of the checkpoint's (resolve())."""

    # what to train
    data: str = "names"            # "names", "arithmetic" or a path to a UTF-8 text file
    lines: bool | None = None      # a file as lines (like names) or one long text; None = guess
    raw_text: bool = False         # keep a file's byte-order mark and \r\n line ends (else removed / made \n)
    model: str = "gpt"             # "gpt", "mlp" or "bigram"
    n_layer: int | None = None     # transformer blocks (gpt)
    n_head: int | None = None      # attention heads (gpt)
    n_embd: int | None = None      # embedding width
    block_size: int | None = None  # context length in tokens
    dropout: float | None = None   # dropout probability (gpt)
    bias: bool | None = None       # biases in Linear/LayerNorm (gpt)
    model_args: dict = field(default_factory=dict)  # any other model config field (norm, tie_weights, ...)
    tokenizer: str = "char"        # "char" (characters; words for arithmetic) or "bpe" (byte-level BPE)
    vocab_size: int | None = None  # BPE vocabulary (None: 512)
    init_from: str | None = None   # a local Hugging Face GPT-2 directory: its weights and tokenizer
    # optimisation
    steps: int = 2000              # total optimizer steps of the run (a resumed run continues to this)
    batch_size: int = 32           # sequences per step
    optimizer: str = "adamw"       # "adamw", "adam" or "sgd"
    lr: float | None = None        # peak learning rate (None: the model's default)
    min_lr: float | None = None    # floor of the cosine schedule (None: lr / 10)
    warmup: int | None = None      # linear warmup steps (None: min(100, steps // 10))
    schedule: str = "cosine"       # "cosine", "linear" or "constant"
    weight_decay: float = 0.1      # decoupled decay on matrices (AdamW), not on biases/gains
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0         # clip the global gradient norm to this (0 = off)
    skip_nonfinite: bool = False   # skip an update whose loss or gradient is nan/inf (else stop)
    # evaluation, output
    eval_interval: int = 250       # evaluate, log and checkpoint every this many steps
    log_interval: int = 10         # read the loss and gradient norm (one small read) every this many steps
    transfer_stats: bool = False   # print what crossed between host and device, per phase, at the end
    eval_iters: int = 20           # batches per split in an evaluation
    samples: int = 5               # samples printed at the end (0 = none)
    device: str = "auto"           # "auto", "cpu", "cuda", "cuda:N", "strict" or "strict:N"
    seed: int = 0                  # weights, batches and dropout
    out: str | None = None         # output directory: checkpoint, log.jsonl, loss.png; None: a fresh
                                   # runs/<date>-<time>-<run id> (the CLI's default is "out")
    resume: bool = False           # continue from the checkpoint in `out`
    overwrite: bool = False        # replace an earlier run in `out` (else a fresh run there is refused)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        extra = sorted(set(d) - known)
        if extra:
            raise ConfigError(f"unknown training setting(s): {', '.join(extra)}; known settings are "
                              f"{', '.join(sorted(known))}")
        return cls(**d)

    def replace(self, **changes) -> "TrainConfig":
        new = replace(self, **changes)
        new.given = self.given | frozenset(changes)
        return new

    def resolve(self) -> "TrainConfig":
        """The settings the run uses: these, and when resuming, the checkpoint's saved settings for
        every one not given (lr, batch size, schedule, sizes, data, ...). Reads checkpoint.json only;
        a missing or damaged checkpoint is left for the Trainer to report."""
        if self.resume is not True or not isinstance(self.out, str):
            return self
        try:
            saved = read_meta(self.out).get("train")
        except CheckpointError:
            return self
        if not isinstance(saved, dict):
            return self
        known = {f.name for f in fields(self)}
        keep = {k: v for k, v in saved.items() if k in known and k not in NOT_RESUMED and k not in self.given}
        data = keep.get("data")
        if isinstance(data, str) and data not in DATASETS and not os.path.exists(data):
            raise DataError(f"the run in {self.out!r} was trained on data file {data!r}, which is not found from "
                            f"here ({os.path.abspath(data)}); give data (--data) the file's path")
        new = replace(self, **keep)
        new.given = self.given
        return new

    # -- resolved values ------------------------------------------------------------
    @property
    def peak_lr(self) -> float:
        return self.lr if self.lr is not None else model_default(self.model, "lr")

    @property
    def warmup_steps(self) -> int:
        return self.warmup if self.warmup is not None else min(100, self.steps // 10)

    def model_fields(self, vocab_size: int) -> dict:
        """The model config fields: per-model defaults <- explicit sizes <- model_args."""
        known = set(MODELS[self.model][1].__dataclass_fields__)
        out = {k: v for k, v in MODEL_DEFAULTS.get(self.model, {}).items() if k in known}
        for k in SIZE_FIELDS:
            v = getattr(self, k)
            if v is not None:
                if k not in known:
                    raise ConfigError(f"model {self.model!r} has no setting {k} (it takes "
                                      f"{', '.join(sorted(known - {'vocab_size'}))}); drop {flag(k)}")
                out[k] = v
        out.update(self.model_args)
        out["vocab_size"] = vocab_size
        return out

    def model_config(self, vocab_size: int):
        try:
            return config_for(self.model, **self.model_fields(vocab_size)).validate()
        except ConfigError:
            raise
        except (ValueError, TypeError) as e:
            raise ConfigError(f"model settings: {e}") from None

    # -- validation: everything checkable before any data is read ------------------------
    def validate(self) -> "TrainConfig":
        def need(ok: bool, msg: str):
            if not ok:
                raise ConfigError(msg)

        def pos_int(name: str, v, allow_none=False):
            if v is None and allow_none:
                return
            need(isinstance(v, int) and not isinstance(v, bool) and v > 0,
                 f"{name} (--{name.replace('_', '-')}) must be a positive integer, got {v!r}")

        def number(name, v, lo, hi=math.inf, lo_open=False, allow_none=False):
            if v is None and allow_none:
                return
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and \
                (v > lo if lo_open else v >= lo) and v < hi
            rng = f"{'>' if lo_open else '>='} {lo}" + (f" and < {hi}" if hi != math.inf else "")
            need(ok, f"{name} (--{name.replace('_', '-')}) must be a number {rng}, got {v!r}")

        for name, annotation in field_types(type(self)).items():
            problem = type_problem(annotation, getattr(self, name))
            need(problem is None, f"{name} (--{name.replace('_', '-')}) {problem}")
        need(isinstance(self.data, str) and self.data.strip() != "",
             f"data (--data) must be 'names', 'arithmetic', a text file or a `tinyllm prepare` folder, got {self.data!r}")
        need(self.model in MODELS, f"unknown model {self.model!r}; choose one of {', '.join(MODELS)}")
        for name in ("steps", "batch_size", "eval_interval", "log_interval", "eval_iters"):
            pos_int(name, getattr(self, name))
        for name in ("n_layer", "n_head", "n_embd", "block_size"):
            pos_int(name, getattr(self, name), allow_none=True)
        number("dropout", self.dropout, 0.0, 1.0, allow_none=True)
        number("lr", self.lr, 0.0, lo_open=True, allow_none=True)
        number("min_lr", self.min_lr, 0.0, allow_none=True)
        number("weight_decay", self.weight_decay, 0.0)
        number("grad_clip", self.grad_clip, 0.0)
        number("beta1", self.beta1, 0.0, 1.0)
        number("beta2", self.beta2, 0.0, 1.0)
        need(self.warmup is None or (isinstance(self.warmup, int) and not isinstance(self.warmup, bool)
                                     and self.warmup >= 0),
             f"warmup (--warmup) must be an integer >= 0, got {self.warmup!r}")
        need(isinstance(self.samples, int) and self.samples >= 0,
             f"samples (--samples) must be an integer >= 0, got {self.samples!r}")
        need(isinstance(self.seed, int) and not isinstance(self.seed, bool) and self.seed >= 0,
             f"seed (--seed) must be an integer >= 0, got {self.seed!r}")
        need(self.schedule in SCHEDULES, f"unknown schedule {self.schedule!r}; choose one of {', '.join(SCHEDULES)}")
        need(self.optimizer in OPTIMIZERS,
             f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        need(self.min_lr is None or self.min_lr <= self.peak_lr,
             f"{flag('min_lr')} {self.min_lr} is above the peak {flag('lr')} {self.peak_lr}; lower min_lr")
        need(isinstance(self.model_args, dict), "model_args must be a dict of model config fields")
        need(self.out is None or self.out.strip() != "", "out (--out) must be a directory path")
        need(not (self.resume is True and self.overwrite is True),
             f"{flag('resume')} continues the run in {flag('out')} and {flag('overwrite')} replaces it; "
             f"pass only one")
        need(not (self.resume and self.out is None), "resume needs out: the directory of the run to continue")
        need(self.out is None or not (os.path.exists(self.out) and not os.path.isdir(self.out)),
             f"output path {self.out!r} is a file, not a directory; point {flag('out')} at a directory")
        self._validate_tokenizer(need)
        return self

    def _validate_tokenizer(self, need) -> None:
        """--tokenizer / --vocab-size / --init-from."""
        need(self.tokenizer in TOKENIZERS,
             f"unknown tokenizer {self.tokenizer!r}; choose one of {', '.join(TOKENIZERS)}")
        v = self.vocab_size
        if v is not None:
            need(self.tokenizer == "bpe", "--vocab-size sets the size of a BPE vocabulary; add --tokenizer bpe "
                                          "(the char tokenizer's vocabulary is the characters of the data)")
            need(isinstance(v, int) and not isinstance(v, bool), f"vocab_size (--vocab-size) must be an integer, "
                                                                 f"got {v!r}")
            need(v >= MIN_VOCAB, f"--vocab-size {v} is too small: byte-level BPE needs at least {MIN_VOCAB} tokens "
                                 f"(256 bytes + <|endoftext|>); use --vocab-size {MIN_VOCAB} or more (e.g. 512)")
            need(v <= MAX_VOCAB, f"--vocab-size {v} is too large (at most {MAX_VOCAB:,}; GPT-2 has 50,257); "
                                 f"use a smaller --vocab-size")
        if self.init_from is None:
            return
        need(isinstance(self.init_from, str) and self.init_from.strip() != "",
             "init_from (--init-from) must be the path of a local Hugging Face GPT-2 directory")
        need(self.model == "gpt", f"{flag('init_from')} starts from a GPT-2, so {flag('model')} must be gpt "
                                  f"(got {self.model!r})")
        need(self.tokenizer == "char" and v is None,
             f"{flag('init_from')} brings its own tokenizer; drop {flag('tokenizer')} / {flag('vocab_size')}")
        fixed = [flag(k) for k in ("n_layer", "n_head", "n_embd", "bias") if getattr(self, k) is not None]
        fixed += [f"model_args {k} ([model] {k})" for k in sorted(self.model_args)]
        need(not fixed, f"{flag('init_from')} fixes the model's shape (from its config.json); drop "
                        f"{', '.join(fixed)} (block_size and dropout may be set)")


def flag(name: str) -> str:
    """A setting as a message names it, for TrainConfig and CLI users alike: 'min_lr (--min-lr)'."""
    return f"{name} (--{name.replace('_', '-')})"


def model_default(model: str, name: str):
    """What a run of `model` uses for setting `name` left unset: MODEL_DEFAULTS, else the model config's
    default (None: the model has no such setting)."""
    if name in MODEL_DEFAULTS.get(model, {}):
        return MODEL_DEFAULTS[model][name]
    if name == "lr":
        return DEFAULT_LR
    f = MODELS[model][1].__dataclass_fields__.get(name)
    return None if f is None else f.default


_FIELDS = tuple(f.name for f in fields(TrainConfig))
_dataclass_init = TrainConfig.__init__


def _init_noting_given(self, *args, **kwargs):
    _dataclass_init(self, *args, **kwargs)
    self.given = frozenset(_FIELDS[:len(args)]) | frozenset(kwargs)


_init_noting_given.__doc__ = _dataclass_init.__doc__
_init_noting_given.__signature__ = inspect.signature(_dataclass_init)
TrainConfig.__init__ = _init_noting_given


def load_toml(path: str) -> dict:
    """A TOML file of TrainConfig fields (dashes or underscores, each once); a [model] table's name is the model,
    its sizes that have flags are those settings (so flags beat them) and its other fields go to model_args."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        raise ConfigError("reading --config needs Python 3.11+ (tomllib); pass the settings as flags") from None
    problem = path_problem(path)
    if problem:
        raise ConfigError(f"config file {path!r} {problem}; check the path given to --config")
    try:
        d = tomllib.loads(read_regular_file(path, MAX_TOML_BYTES).decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"config file {path!r} is not valid TOML ({e}); fix the line it names") from None
    except ValueError as e:  # not a regular file after all, or too large
        raise ConfigError(f"config file {path!r} {e}; check the path given to --config") from None
    except OSError as e:
        raise ConfigError(f"cannot read config file {path!r}: {e.strerror}; check its permissions") from None
    out, written = _one_key_each(path, d, "")
    moved = _model_table(path, out, written) if isinstance(out.get("model"), dict) else {}
    known = field_types(TrainConfig)
    extra = sorted(set(out) - set(known))
    if extra:
        raise ConfigError(f"config file {path!r} has unknown setting(s) {', '.join(extra)}; "
                          f"known settings are {', '.join(sorted(known))}")
    for key, v in out.items():
        if key != "model_args":
            _check_toml_value(path, moved.get(key, key), v, known[key], f"like --{key.replace('_', '-')}")
    model = out.get("model", "gpt")
    if model in MODELS:  # the [model] table's fields, against the model config's types
        types = field_types(MODELS[model][1])
        for key, v in out.get("model_args", {}).items():
            if key in types:
                _check_toml_value(path, f"[model] {key}", v, types[key], f"a {model} setting")
    return out


def _one_key_each(path: str, table: dict, where: str) -> tuple:
    """(settings with underscores, {setting: the key as written}); a setting written twice (batch-size and
    batch_size) is refused: which one would win is a guess."""
    out, written = {}, {}
    for k, v in table.items():
        name = k.replace("-", "_")
        if name in out:
            raise ConfigError(f"config file {path!r} sets {name} twice ({where}{written[name]} and {where}{k}); "
                              f"keep one")
        out[name], written[name] = v, where + k
    return out, written


def _model_table(path: str, out: dict, written: dict) -> dict:
    """The [model] table into out: name -> model; the sizes that have flags (n_embd, block_size, ...) become
    those settings, so a flag given beats them as it beats the top level; the rest -> model_args.
    Returns {setting: "[model] setting"} for those moved (what a message about them says)."""
    table, in_table = _one_key_each(path, out.pop("model"), "[model] ")
    if "name" in table:
        out["model"] = table.pop("name")
    moved = {}
    for k in SIZE_FIELDS:
        if k in table:
            if k in out:
                raise ConfigError(f"config file {path!r} sets {k} twice ({written[k]} and {in_table[k]}); "
                                  f"keep one")
            out[k], moved[k] = table.pop(k), f"[model] {k}"
    out["model_args"] = {**out.get("model_args", {}), **table}
    return moved


def _check_toml_value(path: str, key: str, v, annotation, what: str) -> None:
    problem = type_problem(annotation, v, none=False)
    if problem:
        raise ConfigError(f"config file {path!r}: {key} {problem} ({what}); fix that line")
