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
from ..data.tokenizers import vocab_misfit
from ..errors import CheckpointError, ConfigError, DataError
from ..gpt2 import load_hf_tokenizer
from ..models.build import build_checked
from ..version import __version__
from .checkpoint import DAMAGED_FIX, INDEX, committed_file, has_checkpoint, load_checkpoint, read_index
from .checkpoint_fit import check_loadable, model_config, tokenizer_difference
from .config import SIZE_FIELDS


# -- the trainer's state <-> a checkpoint ---------------------------------------------------------

def state(t) -> tuple:
    """(tensors, meta) of Trainer t for save_checkpoint: host arrays + JSON-able metadata.

    The optimizer keeps every parameter, and each state slot, in one flat
    array: a checkpoint is one read per flat array, split on the host."""
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
    check_before_reading(cfg.out, t.backend, resume=True)  # a model too large is refused before its file is read
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
    if fp is not None and fp != t.data_info["fingerprint"] and "manifest_sha256" in t.data_info:
        raise DataError(f"cannot resume: the prepared data in {t.config.data} changed since the run in {cfg.out!r} "
                        f"started (its manifest sha256 differs); resume with the data it was trained on, or start "
                        f"a new run in another --out")
    if fp is not None and fp != t.data_info["fingerprint"]:
        t.log.warn("the data differs from the data the checkpoint was trained on (same tokenizer); "
                   "resuming, but this is not an exact continuation")
    _note_changed_init_from(t, meta["tokenizer"])
    t.run_id = committed_file(cfg.out)[0] or t.run_id  # continue writing as that run
    return tensors, meta


def _note_changed_init_from(t, saved: dict) -> None:
    """A resumed --init-from run goes on with the tokenizer stored in its checkpoint (init_from.data_tokenizer);
    one warning line when the directory now holds another, saying what differs."""
    path = t.config.init_from
    if not path or not os.path.isdir(path):
        return
    try:
        now = load_hf_tokenizer(path, bos=bool(saved.get("bos"))).to_dict()
    except TokenizerError:
        now = None
    if now != saved:
        why = tokenizer_difference(saved, now, f"{path} holds") if now else f"{path} holds no readable one now"
        t.log.warn(f"the tokenizer in --init-from {path} is not the one this run was trained with ({why}); "
                   f"resuming with the run's own tokenizer, stored in its checkpoint")


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

def model_from_meta(meta: dict, device, out_dir: str | None = None, training: bool = True):
    """The (untrained) model a checkpoint's meta describes, on `device` (refused when it cannot fit the memory
    training it, or with training=False loading it, takes)."""
    return build_checked(meta["model"], model_config(meta, out_dir), device, training=training,
                         fix=None if training else "load it on a machine with more memory")


def check_before_reading(out_dir: str, backend, resume: bool) -> dict:
    """checkpoint.json's meta, checked (check_meta) and held against its tensor list and the memory
    (check_loadable) before the tensor file is read or a model built."""
    index = read_index(out_dir)
    check_meta(index["meta"], out_dir, resume)
    shapes = {n: v["shape"] for n, v in index["tensors"].items()}
    check_loadable(index["meta"], shapes, 0 if resume else index["size"], out_dir, backend, training=resume)
    return index["meta"]


def load_trained(out_dir: str, device="auto"):
    """(model, tokenizer, meta) from the checkpoint in out_dir, on any device
    (a checkpoint trained on a GPU loads on the CPU and the other way round)."""
    backend = get_backend(device)
    checked = check_before_reading(out_dir, backend, resume=False)
    tensors, meta = load_checkpoint(out_dir)
    tokenizer = check_meta(meta, out_dir, resume=False)  # the tokenizer too, and that it fits the model
    if meta != checked:  # a run committed a newer checkpoint meanwhile
        check_loadable(meta, {n: a.shape for n, a in tensors.items()}, 0, out_dir, backend, training=False)
    model = model_from_meta(meta, backend, out_dir, training=False)
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


def check_tokenizer(meta: dict, tokenizer_dict: dict) -> None:
    """Refuse a checkpoint whose tokenizer differs from the one the data gives."""
    saved = meta.get("tokenizer") if isinstance(meta, dict) else None
    if saved is None:
        raise CheckpointError("checkpoint records no tokenizer; it cannot be matched to the data: start a new run")
    if saved != tokenizer_dict:
        raise CheckpointError(f"the checkpoint does not fit these settings and data: "
                              f"{tokenizer_difference(saved, tokenizer_dict)}; resume with the data and settings "
                              f"it was trained with, or start a new run in another --out")


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
    model_vocab = meta["config"].get("vocab_size")
    misfit = vocab_misfit(tokenizer, model_vocab) if type(model_vocab) is int else None  # other types: model_config
    if misfit:  # the rule --init-from holds a GPT-2 directory to: a padded vocabulary (50,304 > 50,257) loads
        raise CheckpointError(f"{damaged}: its tokenizer {misfit} (was {INDEX} edited?); {DAMAGED_FIX}")
    if meta["tokenizer"].get("type") in ("char", "word") and type(model_vocab) is int \
            and tokenizer.vocab_size != model_vocab:  # tinyllm sizes the model to the tokenizers it builds
        raise CheckpointError(f"{damaged}: its {meta['tokenizer']['type']} tokenizer has {tokenizer.vocab_size} "
                              f"tokens, its model {model_vocab} (was {INDEX} edited?); {DAMAGED_FIX}")
    return tokenizer
