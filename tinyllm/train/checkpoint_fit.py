"""Whether a checkpoint can be loaded, decided from checkpoint.json before its tensor file is read or a
model is built: its model settings against its tensor list and against the memory, and, for a resumed
run, its tokenizer against the one the settings and data give (said in words: what differs).

A hand-edited checkpoint.json asking for 10**6 layers is thereby one line at once (its tensor file
holds far fewer parameters), never minutes of building a model that the tensors then do not fit.
"""
from __future__ import annotations

import math

from ..errors import CheckpointError
from ..models import config_for, parameter_range
from ..models.build import check_fits
from .checkpoint import DAMAGED_FIX, INDEX


def model_config(meta: dict, out_dir: str | None = None):
    """The validated model config a checkpoint's meta describes (CheckpointError when it is unusable)."""
    try:
        return config_for(meta["model"], **dict(meta["config"])).validate()
    except (KeyError, TypeError, ValueError) as e:
        where = f" in {out_dir!r}" if out_dir is not None else ""
        raise CheckpointError(f"checkpoint{where}: its model description is unusable ({e}); "
                              f"train a new one (tinyllm train --out DIR)") from None


def check_loadable(meta: dict, shapes: dict, file_bytes: int, out_dir: str, backend, training: bool):
    """The model config of a checkpoint whose meta was checked (check_meta), once its settings match the
    parameters its tensor file holds (shapes: {name: shape}) and the model fits the memory (OutOfMemory,
    exit 3): training it (resume) or loading it with its file of file_bytes (sample, export)."""
    mcfg = model_config(meta, out_dir)
    held = sum(math.prod(s) for n, s in shapes.items() if n.startswith("model."))
    least, most = parameter_range(meta["model"], mcfg)
    if least > 2 * held + 10**5:  # far more than the file holds: refused before building (a mismatch that
        # costs little to build is named tensor by tensor once the model is there)
        described = f"{most:,}" if least == most else f"{least:,} to {most:,}"
        raise CheckpointError(f"checkpoint in {out_dir!r} is damaged: its model settings describe {described} "
                              f"parameters, its tensor file holds {held:,} (was {INDEX} edited?); {DAMAGED_FIX}")
    check_fits(meta["model"], mcfg, backend, training, file_bytes,
               fix="load it on a machine with more memory" if not training else None)
    return mcfg


def _shown(items: list, limit: int = 8) -> str:
    text = ", ".join(repr(x) for x in items[:limit])
    return text + (", ..." if len(items) > limit else "")


def _size(d: dict) -> str:
    toks = d.get("tokens")
    bos = d.get("type") == "word" or bool(d.get("bos"))  # <bos> counts: the number is the vocab size
    return str(len(toks) + bos if isinstance(toks, list) else d.get("vocab_size", "?"))  # bpe: no token list


def tokenizer_difference(saved, now, gives: str = "the settings give") -> str:
    """What differs between the tokenizer a checkpoint was trained with (saved) and the one the settings and
    data give now (tokenizer descriptions, to_dict()), in words; `gives` says where the new one comes from."""
    if not isinstance(saved, dict) or not isinstance(now, dict):
        return "its tokenizer description is unreadable"
    kind, other = saved.get("type", "?"), now.get("type", "?")
    if kind != other:
        return f"it was trained with a {kind} tokenizer, {gives} a {other} tokenizer"
    parts = []
    if isinstance(saved.get("tokens"), list) and isinstance(now.get("tokens"), list):
        unit = "characters" if kind == "char" else "words"
        new = sorted(set(now["tokens"]) - set(saved["tokens"]))
        gone = sorted(set(saved["tokens"]) - set(now["tokens"]))
        parts += [f"the data has {unit} its {_size(saved)}-token tokenizer lacks ({_shown(new)})"] if new else []
        parts += [f"the data lacks {unit} its tokenizer has ({_shown(gone)})"] if gone else []
    if bool(saved.get("bos")) != bool(now.get("bos")):
        read = {True: "one example a line (--lines)", False: "one text (--no-lines)"}
        parts.append(f"it was trained on data read as {read[bool(saved.get('bos'))]}, the data is now read as "
                     f"{read[bool(now.get('bos'))]}")
    if parts or isinstance(saved.get("tokens"), list):
        return ", and ".join(parts) or "its tokens are in another order"
    if _size(saved) != _size(now):
        return f"it was trained with a {kind} tokenizer of {_size(saved)} tokens, {gives} one of {_size(now)} tokens"
    return f"it was trained with a {kind} tokenizer of {_size(saved)} tokens, {gives} one of as many but other " \
           f"tokens or merges"
