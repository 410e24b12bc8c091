"""Resuming a run: the state a checkpoint holds, reading it back exactly, and loading a trained model.

Resuming is exact: the checkpoint holds the weights, the optimizer moments and
step count, the batch RNG state and the step (the schedule position, and the
counter of the on-device generator that makes dropout masks), so on one backend
N straight steps and N/2 + resume + N/2 give identical losses and weights.
The settings a resumed run takes from its checkpoint are TrainConfig.resolve()'s.

    state(trainer) -> (tensors, meta)     what save_checkpoint writes
    read_resume(trainer) -> (tensors, meta)   the checkpoint to continue, checked against the run
    restore(trainer, tensors, meta)       weights, optimizer, RNG, step and history back in place
    load_trained(out_dir, device)         (model, tokenizer, meta) for sampling or export
"""
from __future__ import annotations

import json
import os

from backends import get_backend

from ..data import TokenizerError, tokenizer_from_dict
from ..errors import CheckpointError, ConfigError
from ..models import config_for
from .build import build_checked
from .checkpoint import DAMAGED_FIX, INDEX, committed_file, has_checkpoint, load_checkpoint
from .config import SIZE_FIELDS


# -- the trainer's state <-> a checkpoint ---------------------------------------------------------

def state(t) -> tuple:
    """(tensors, meta) of Trainer t for save_checkpoint: host arrays + JSON-able metadata.

    The optimizer keeps every parameter, and each state slot, in one flat
    array: a checkpoint is one read per flat array, split on the host."""
    from .. import __version__

    be, opt = t.backend, t.optimizer
    flat = opt.flat
    index = {id(p): i for i, p in enumerate(flat.params)}
    weights = flat.split_host(be.to_host(flat.data))
    tensors = {f"model.{n}": weights[index[id(p)]] for n, p in t.model.named_parameters()}
    for k, a in opt.state.items():
        tensors.update({f"optim.{i}.{k}": h for i, h in enumerate(flat.split_host(be.to_host(a)))})
    meta = {
        "model": t.model_name, "config": t.model.config.to_dict(),
        "tokenizer": t.tokenizer.to_dict(), "step": t.step,
        "train": {**t.config.to_dict(), "resume": False, "overwrite": False}, "data": t.data_info,
        "rng": {"batch": t.rng.get_state(), "device": "philox4x32-10, counter = step"},
        "optim": {"kind": t.config.optimizer, "step_count": opt.step_count},
        "log": t.evals, "losses": t.losses, "skipped": t.skipped,
        "device": t.backend.name, "tinyllm": __version__,
    }
    return tensors, meta


def read_resume(t) -> tuple:
    """(tensors, meta) of the checkpoint in t.config.out, refused (CheckpointError / ConfigError) when
    it is missing, damaged, or does not fit the run's data, model or sizes. t.run_id becomes its run's."""
    cfg = t.config
    if not has_checkpoint(cfg.out) and not os.path.isdir(cfg.out):
        raise CheckpointError(f"cannot resume: output directory {cfg.out!r} does not exist; "
                              f"check --out, or train without --resume to start a new run")
    tensors, meta = load_checkpoint(cfg.out)  # CheckpointError for missing / damaged
    check_meta(meta, cfg.out, resume=True)  # every entry of a hand-edited checkpoint.json, by type and range
    if meta["step"] != meta["optim"]["step_count"]:  # they advance together: one of them was edited
        raise CheckpointError(f"the checkpoint in {cfg.out!r} does not add up: its step {meta['step']} differs from "
                              f"its optimizer's step_count {meta['optim']['step_count']} (was {INDEX} edited?); "
                              f"restore the step, or start a new run in another --out")
    check_tokenizer(meta, t.tokenizer.to_dict())  # resuming with other data
    if meta["model"] != cfg.model:
        raise CheckpointError(f"the checkpoint in {cfg.out!r} holds a {meta['model']!r} model, the settings ask "
                              f"for {cfg.model!r}; resume with --model {meta['model']} or use another --out")
    saved = meta["config"]
    for k in SIZE_FIELDS:
        v = getattr(cfg, k)
        if v is not None and k in saved and saved[k] != v:
            raise ConfigError(f"the checkpoint in {cfg.out!r} was trained with {k}={saved[k]}, the settings "
                              f"ask for {k}={v}; drop --{k.replace('_', '-')} when resuming or use another --out")
    fp = (meta.get("data") or {}).get("fingerprint")
    if fp is not None and fp != t.data_info["fingerprint"]:
        t.log.warn("the data differs from the data the checkpoint was trained on (same tokenizer); "
                   "resuming, but this is not an exact continuation")
    t.run_id = committed_file(cfg.out)[0] or t.run_id  # continue writing as that run
    return tensors, meta


def restore(t, tensors: dict, meta: dict) -> None:
    """Put a checkpoint's weights, optimizer state, batch RNG, step and history into Trainer t."""
    load_weights(t.model, tensors)
    opt = {k[len("optim."):]: v for k, v in tensors.items() if k.startswith("optim.")}
    try:
        if meta["optim"].get("kind", t.config.optimizer) != t.config.optimizer:
            raise ValueError(f"it used optimizer {meta['optim']['kind']!r}, the settings ask for "
                             f"{t.config.optimizer!r}")
        t.optimizer.load_state_arrays(opt, meta["optim"]["step_count"])
        t.rng.set_state(meta["rng"]["batch"])
        if any(st is not None for st in meta["rng"].get("dropout") or []):
            t.log.warn("this checkpoint is from a tinyllm that drew dropout masks on the host; resuming, "
                       "but the masks now come from the on-device generator: not an exact continuation")
        t.step = int(meta["step"])
        t.losses = list(meta.get("losses", []))
        t.evals = list(meta.get("log", []))
        t.skipped = int(meta.get("skipped", 0))
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"the checkpoint in {t.out!r} cannot be resumed: {e}; "
                              f"resume with the settings it was trained with, or start a new run") from None
    if t.step >= t.config.steps:
        raise ConfigError(f"the checkpoint in {t.out!r} is already at step {t.step} of steps (--steps) "
                          f"{t.config.steps}; give a larger steps (--steps) to train on")


# -- a trained model ------------------------------------------------------------------------------

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
    tokenizer = check_meta(meta, out_dir, resume=False)  # the tokenizer too, and that it fits the model
    model = model_from_meta(meta, get_backend(device), out_dir)
    load_weights(model, tensors)
    model.eval()
    return model, tokenizer, meta


def load_weights(model, tensors: dict) -> None:
    """Copy a checkpoint's "model.*" tensors into model (CheckpointError if names or shapes differ)."""
    weights = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    check_tensors(weights, {n: p.shape for n, p in model.named_parameters()})
    model.load_state_dict(weights)


# -- checks of a checkpoint against the run ------------------------------------------------------

def check_tensors(tensors: dict, expected: dict, what: str = "the model") -> None:
    """Refuse a checkpoint whose tensors do not match `expected` ({name: shape}) exactly."""
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    fix = "resume with the same model settings it was trained with, or start a new run in another --out"
    if missing:
        raise CheckpointError(f"checkpoint does not match {what}: {len(missing)} tensor(s) missing "
                              f"({', '.join(missing[:4])}{', ...' if len(missing) > 4 else ''}); {fix}")
    if extra:
        raise CheckpointError(f"checkpoint does not match {what}: {len(extra)} unexpected tensor(s) "
                              f"({', '.join(extra[:4])}{', ...' if len(extra) > 4 else ''}); {fix}")
    for n in sorted(expected):
        got, want = tuple(tensors[n].shape), tuple(expected[n])
        if got != want:
            raise CheckpointError(f"checkpoint does not match {what}: tensor {n!r} has shape {got}, "
                                  f"expected {want}; {fix}")


def _tok_summary(d) -> str:
    if not isinstance(d, dict):
        return "an unreadable tokenizer"
    toks = d.get("tokens")
    bos = d.get("type") == "word" or bool(d.get("bos"))  # <bos> counts: the number is the vocab size
    n = len(toks) + bos if isinstance(toks, list) else d.get("vocab_size", "?")  # bpe: no token list
    return f"a {d.get('type', '?')} tokenizer of {n} tokens"


def check_tokenizer(meta: dict, tokenizer_dict: dict) -> None:
    """Refuse a checkpoint whose tokenizer differs from the one the data gives."""
    saved = meta.get("tokenizer") if isinstance(meta, dict) else None
    if saved is None:
        raise CheckpointError("checkpoint records no tokenizer; it cannot be matched to the data: start a new run")
    if saved != tokenizer_dict:
        raise CheckpointError(f"checkpoint was trained with {_tok_summary(saved)}, the data gives "
                              f"{_tok_summary(tokenizer_dict)}: resume with the same --data, or start a new "
                              f"run in another --out")


def _count(v) -> bool:
    return type(v) is int and v >= 0


def _number_or_none(v) -> bool:
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))


# entry -> (a check of its value, what it must be); "model" and "config" are checked by building the model
_META_RULES = {
    "model": (lambda v: isinstance(v, str), "a model name"),
    "config": (lambda v: isinstance(v, dict), "an object of model settings"),
    "tokenizer": (lambda v: isinstance(v, dict), "an object"),
    "step": (_count, "an integer >= 0"),
    "optim": (lambda v: isinstance(v, dict) and _count(v.get("step_count")) and isinstance(v.get("kind", ""), str),
              "an object with an integer step_count >= 0"),
    # "dropout": host RNG states, only in checkpoints of tinyllm before the on-device generator
    "rng": (lambda v: isinstance(v, dict) and isinstance(v.get("batch"), dict)
            and isinstance(v.get("dropout", []), list) and all(s is None or isinstance(s, dict) for s in v.get("dropout", [])),
            "an object with a batch state (and, from older tinyllm, a list of dropout states)"),
    "losses": (lambda v: isinstance(v, list) and all(_number_or_none(x) for x in v), "a list of numbers"),
    "log": (lambda v: isinstance(v, list) and all(isinstance(x, dict) for x in v), "a list of objects"),
    "skipped": (_count, "an integer >= 0"),
    "train": (lambda v: isinstance(v, dict), "an object of training settings"),
    "data": (lambda v: isinstance(v, dict), "an object"),
}


def check_meta(meta: dict, out_dir: str, resume: bool):
    """Refuse checkpoint metadata that a hand edit or damage made unusable, as strictly as the tensors:
    every entry present has its type and range; resume needs the entries of an exact continuation.
    Returns the saved tokenizer, built once here to check it (a BPE tokenizer is not cheap to build)."""
    needed = ("model", "config", "tokenizer") + (("step", "rng", "optim") if resume else ())
    for key in needed:
        if key not in meta:
            raise CheckpointError(f"checkpoint in {out_dir!r} lacks {key!r}, so it cannot be "
                                  f"{'resumed exactly' if resume else 'loaded'}; start a new run in another --out")
    damaged = f"checkpoint in {out_dir!r} is damaged"
    for key, (ok, what) in _META_RULES.items():
        if key in meta and not ok(meta[key]):
            shown = json.dumps(meta[key])
            raise CheckpointError(f"{damaged}: its {key!r} entry must be {what}, got "
                                  f"{shown[:60]}{'...' if len(shown) > 60 else ''} (was {INDEX} edited?); {DAMAGED_FIX}")
    try:
        tokenizer = tokenizer_from_dict(meta["tokenizer"])
    except TokenizerError as e:
        raise CheckpointError(f"{damaged}: its tokenizer is unusable ({e}); {DAMAGED_FIX}") from None
    vocab = tokenizer.vocab_size
    if vocab != meta["config"].get("vocab_size", vocab):
        raise CheckpointError(f"{damaged}: its tokenizer has {vocab} tokens, its model {meta['config']['vocab_size']} "
                              f"(was {INDEX} edited?); {DAMAGED_FIX}")
    return tokenizer
