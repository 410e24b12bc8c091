"""A local Hugging Face GPT-2 directory: export a tinyllm GPT into one, start from one.

    export_model(model, tokenizer, "gpt2-out")   # config.json, model.safetensors (+ tokenizer.json ...)
    model, tok = load_pretrained("gpt2-dir", device="cpu")

The directory is what transformers' `save_pretrained` writes and
`GPT2LMHeadModel.from_pretrained(DIR)` reads: config.json, model.safetensors,
and the tokenizer as tokenizer.json (or GPT-2's vocab.json + merges.txt).
Nothing is fetched from a network, and neither direction needs torch: the
tensors go through safetensors' NumPy side (backends.io).

An export is written into a temporary directory beside DEST and renamed into
place, so DEST is either complete or absent; a DEST that already holds files is
refused (nothing of it is touched). DEST gets the mode mkdir would give it (the
umask's), or keeps the mode of the empty directory it replaces.
"""
from __future__ import annotations

import errno
import json
import os
import secrets
import shutil
import stat

from backends import get_backend
from backends.io import SafetensorsFormatError, decode_safetensors, encode_safetensors

from ..data.bpe import BPETokenizer
from ..data.tokenizers import vocab_misfit
from ..errors import EXIT_FAILED, ExportError
from ..models.build import build_checked, check_fits
from ..models.gpt import GPT
from .layout import (HFFormatError, config_from_gpt2, gpt2_config, gpt2_tensors, load_gpt2_tensors,
                     match_gpt2_tensors)
from .tokenizer_files import load_hf_tokenizer, write_tokenizer_files

CONFIG, WEIGHTS = "config.json", "model.safetensors"
NEEDS = "config.json, model.safetensors, and tokenizer.json or vocab.json + merges.txt"


# -- export -------------------------------------------------------------------------------------

def export_model(model, tokenizer, dest: str) -> list:
    """Write model (a GPT) and, for a BPE tokenizer, its tokenizer files into the new directory dest; -> file names.

    HFFormatError for a model GPT-2's layout cannot hold; ExportError for a dest that cannot be written.
    """
    if not isinstance(model, GPT):
        raise HFFormatError(f"only GPT models export to GPT-2's layout; this is a {type(model).__name__}")
    bpe = isinstance(tokenizer, BPETokenizer)
    bos = tokenizer.bos_id if bpe else getattr(tokenizer, "bos_id", None)
    config = gpt2_config(model.config, bos_id=bos)  # refuses RMS norm, ReLU, no final norm
    blob = encode_safetensors(gpt2_tensors(model), metadata={"format": "pt"})  # what from_pretrained expects
    _check_dest(dest)
    parent = os.path.dirname(os.path.abspath(dest))
    tmp = None
    try:
        if os.path.lexists(parent) and not os.path.isdir(parent):  # makedirs would say "File exists"
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), parent)
        os.makedirs(parent, exist_ok=True)
        tmp = _new_dir(parent, os.path.basename(os.path.abspath(dest)))
        with open(os.path.join(tmp, CONFIG), "w", encoding="utf-8") as f:
            f.write(json.dumps(config, indent=2, sort_keys=True) + "\n")
        with open(os.path.join(tmp, WEIGHTS), "wb") as f:
            f.write(blob)
        files = [CONFIG, WEIGHTS]
        if bpe:
            files += write_tokenizer_files(tokenizer, tmp, model.config.block_size)
        if os.path.isdir(dest):  # the user's empty directory: ours takes its place and its mode
            os.chmod(tmp, stat.S_IMODE(os.stat(dest).st_mode))
            os.rmdir(dest)  # empty (checked above); rmdir refuses if a file appeared since
        os.rename(tmp, dest)
        tmp = None
        return files
    except OSError as e:
        raise _write_error(dest, e) from None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _new_dir(parent: str, base: str) -> str:
    """A new empty directory beside the destination, made as mkdir makes one (mode 0777 less the umask;
    tempfile.mkdtemp's 0700 would stay on the export)."""
    while True:
        path = os.path.join(parent, f".{base}.tmp-{secrets.token_hex(4)}")
        try:
            os.mkdir(path)
            return path
        except FileExistsError:
            continue


# errno -> (what went wrong, what to do) for an export that cannot be written
_WRITE_ERRORS = {
    errno.ENOSPC: ("the disk is full", "free some space or choose another destination"),
    errno.EDQUOT: ("the disk quota is exceeded", "free some space or choose another destination"),
    errno.ENOENT: ("a directory on its path is missing", "create it first, or choose another destination"),
    errno.ENOTDIR: ("a part of its path is a file, not a directory", "choose another destination"),
    errno.EROFS: ("the file system is read-only", "choose a destination on a writable file system"),
    errno.EACCES: ("permission denied", "choose a destination you can write to"),
    errno.EPERM: ("permission denied", "choose a destination you can write to"),
}


def _write_error(dest: str, e: OSError) -> ExportError:
    """One line naming what actually went wrong; exit 3 when the disk failed the export (full, an I/O
    error), 2 when the destination is the problem."""
    why, fix = _WRITE_ERRORS.get(e.errno, (e.strerror or str(e), "choose another destination"))
    err = ExportError(f"cannot write the export to {dest!r}: {why}; {fix}")
    if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO):
        err.exit_code = EXIT_FAILED  # nothing wrong with what was asked: the run failed, as out of memory does
    return err


def _check_dest(dest: str) -> None:
    if os.path.isdir(dest):
        if os.listdir(dest):
            raise ExportError(f"destination {dest!r} already holds files; export into a new or empty directory")
    elif os.path.lexists(dest):
        raise ExportError(f"destination {dest!r} is a file; give a directory path that does not exist yet")


# -- load ---------------------------------------------------------------------------------------

def _check_dir(path: str) -> None:
    if not isinstance(path, str) or not os.path.isdir(path):
        raise HFFormatError(f"--init-from {path!r} is not a directory; give a local Hugging Face GPT-2 directory "
                            f"({NEEDS}); nothing is downloaded")


def read_config(path: str) -> dict:
    _check_dir(path)
    f = os.path.join(path, CONFIG)
    try:
        with open(f, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise HFFormatError(f"{f} is missing; a GPT-2 directory holds {NEEDS}") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise HFFormatError(f"{f} cannot be read as JSON ({str(e)[:100]})") from None


def read_weights(path: str) -> dict:
    f = os.path.join(path, WEIGHTS)
    if not os.path.isfile(f):
        others = [n for n in ("model.safetensors.index.json", "pytorch_model.bin", "tf_model.h5")
                  if os.path.exists(os.path.join(path, n))]
        hint = (f"; the directory has {others[0]}, which tinyllm does not read: save the model as a single "
                f"model.safetensors (transformers: save_pretrained(dir, max_shard_size='100GB'))" if others else "")
        raise HFFormatError(f"{f} is missing{hint}")
    try:
        with open(f, "rb") as fh:
            tensors, _ = decode_safetensors(fh.read())
    except OSError as e:
        raise HFFormatError(f"cannot read {f}: {e.strerror}") from None
    except SafetensorsFormatError as e:
        raise HFFormatError(f"{f} is not a readable safetensors file ({e})") from None
    return tensors


def load_pretrained_model(path: str, device="cpu", block_size: int | None = None,
                          dropout: float | None = None, training: bool = False) -> GPT:
    """A GPT with the weights of the GPT-2 directory path (block_size crops the context, dropout overrides).

    Before anything is allocated, the sizes in config.json are held against the memory (OutOfMemory,
    exit 3: training=True counts gradients and optimizer state too) and the file against config.json."""
    raw, cfg = read_gpt2_config(path, block_size, dropout)
    backend = get_backend(device) if isinstance(device, str) else device
    f = os.path.join(path, WEIGHTS)
    fix = f"check n_layer, n_embd and vocab_size in {os.path.join(path, CONFIG)}"
    check_fits("gpt", cfg, backend, training, file_bytes=_file_size(f), fix=fix)
    tensors = read_weights(path)
    n_pos = raw.get("n_positions", raw.get("n_ctx", 1024))
    match_gpt2_tensors(cfg, tensors, f, n_positions=n_pos)  # names and shapes, before the model is built
    model = build_checked("gpt", cfg, backend, training=training, fix=fix)
    load_gpt2_tensors(model, tensors, f, n_positions=n_pos)
    model.eval()
    return model


def _file_size(f: str) -> int:
    try:
        return os.path.getsize(f)
    except OSError:
        return 0  # read_weights says what is wrong with it


def read_gpt2_config(path: str, block_size: int | None = None, dropout: float | None = None) -> tuple:
    """(config.json as a dict, the GPTConfig it describes)."""
    raw = read_config(path)
    return raw, config_from_gpt2(raw, os.path.join(path, CONFIG), block_size=block_size, dropout=dropout)


def load_pretrained_tokenizer(path: str, vocab_size: int | None = None, bos: bool = False) -> BPETokenizer:
    """The directory's tokenizer, checked against the model's vocabulary (config.json's when None) by the
    rule a checkpoint is held to too (vocab_misfit): every id it gives is below vocab_size."""
    if vocab_size is None:
        vocab_size = read_gpt2_config(path)[1].vocab_size
    _check_dir(path)
    tok = load_hf_tokenizer(path, bos=bos)
    misfit = vocab_misfit(tok, vocab_size)
    if misfit:
        raise HFFormatError(f"the tokenizer in {path} {misfit} in {CONFIG}; the files come from different models")
    return tok


def load_pretrained(path: str, device="cpu", block_size: int | None = None, dropout: float | None = None):
    """(model, tokenizer) from a local GPT-2 directory (the tokenizer is checked first: it is quick to read)."""
    tok = load_pretrained_tokenizer(path)
    return load_pretrained_model(path, device, block_size, dropout), tok
