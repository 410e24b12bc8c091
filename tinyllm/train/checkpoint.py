"""Crash-safe checkpoints: tensors as safetensors, everything else as JSON.

Layout of an output directory:

    checkpoint.json              the commit point: names the tensor file, its size
                                 and sha256, every tensor's dtype and shape, and
                                 the caller's meta (config, tokenizer, step, RNG ...)
    ckpt-<step>-<run>-<tag>.safetensors  weights + optimizer state (no pickle; PyTorch reads it)

A save writes the new tensor file (temp file, fsync, rename, fsync of the
directory), then atomically replaces checkpoint.json, then deletes the older
tensor files of the same run.

Only files this run wrote are ever removed: every file a save creates carries
the run's id (8 hex digits, kept in checkpoint.json as "run_id"), and the
cleanup after a commit removes only the previous checkpoint's tensor file
(when it belongs to this run, or to the run being replaced) and temp / tensor
files that carry this run's id. A user's own files in --out (even ones named
like ours) are never touched, so --out . is safe. A SIGKILL at any moment therefore leaves either the old or the
new checkpoint.json, and the file it names is complete: the last complete
checkpoint always loads. Loading verifies size, hash, dtypes and shapes and
refuses anything else with one CheckpointError line saying what to do.

WRITE_DELAY (seconds, 0 in use) slows a save down for the crash tests: set
above 0 (tests/slowsave.py sets it in a child process), tensors are written in
4 KiB chunks with a sleep after each and between the commit steps, so a test
can SIGKILL a process in the middle of a write.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import secrets
import time

from backends.io import SafetensorsFormatError, decode_safetensors, describe, encode_safetensors

from ..errors import CheckpointError, OutputDirError

FORMAT = "tinyllm-checkpoint"
VERSION = 1
INDEX = "checkpoint.json"
MAX_INDEX_BYTES = 256 * 1024 * 1024
# ckpt-<step>-<run id>-<tag> (tinyllm 0.1 wrote ckpt-<step>-<tag>: still read)
_TENSOR_FILE = re.compile(r"ckpt-\d{8,}-(?:[0-9a-f]{8}-)?[0-9a-f]{8}\.safetensors")
_RUN_ID = re.compile(r"[0-9a-f]{8}")
_TMP_PREFIX = ".tmp-"
# files a run keeps in its output directory besides the tensor files
RUN_FILES = ("checkpoint.json", "log.jsonl", "loss.png")
WRITE_DELAY = 0.0  # seconds slept per 4 KiB written and between commit steps: only the crash tests raise it


DAMAGED_FIX = "delete it (or the whole output directory) to start fresh, or point --out at another directory"


# -- writing -------------------------------------------------------------------------------------

def _fsync_dir(path: str) -> None:
    """Make a rename durable (a no-op where directories cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.EBADF, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)


def _write_file(path: str, data: bytes, delay: float) -> tuple:
    """Write data to a new file with os.write (so tests can inject ENOSPC), fsync; -> (size, sha256)."""
    step = 4096 if delay else 1 << 24
    mv = memoryview(data)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        for i in range(0, len(mv), step):
            part = mv[i:i + step]
            while len(part):
                n = os.write(fd, part)
                part = part[n:]
            if delay:
                time.sleep(delay)
        os.fsync(fd)
    finally:
        os.close(fd)
    return len(mv), hashlib.sha256(mv).hexdigest()


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def output_dir_error(out_dir: str, e: OSError, doing: str) -> OutputDirError:
    """One clear line for an OSError while writing in out_dir: 'cannot <doing> in <dir>: <why>; <fix>'."""
    why = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
           errno.EACCES: "permission denied", errno.EPERM: "permission denied",
           errno.EROFS: "the file system is read-only"}.get(e.errno, e.strerror or str(e))
    fix = ("free some disk space or point --out at another directory" if e.errno in (errno.ENOSPC, errno.EDQUOT)
           else "point --out at a directory you can write")
    return OutputDirError(f"cannot {doing} in {out_dir!r}: {why}; {fix}")


def prepare_output_dir(out_dir: str) -> None:
    """Create out_dir and prove it is writable now, before any training time is spent."""
    probe = os.path.join(out_dir, f"{_TMP_PREFIX}probe-{secrets.token_hex(4)}")
    try:
        if os.path.exists(out_dir) and not os.path.isdir(out_dir):
            raise OutputDirError(f"output path {out_dir!r} is a file, not a directory; point --out at a directory")
        if os.path.islink(out_dir) and not os.path.exists(out_dir):
            raise OutputDirError(f"output path {out_dir!r} is a symbolic link to {os.readlink(out_dir)!r}, which "
                                 f"does not exist; create that directory, or point --out at another one")
        os.makedirs(out_dir, exist_ok=True)
        _write_file(probe, b"ok", 0.0)
    except OSError as e:
        raise output_dir_error(out_dir, e, "write") from None
    finally:
        _remove(probe)


def new_run_id() -> str:
    return secrets.token_hex(4)


def save_checkpoint(out_dir: str, tensors: dict, meta: dict, run_id: str | None = None,
                    replaces: str | None = None) -> str:
    """Write tensors (host NumPy arrays) + meta (JSON-able) as the new checkpoint of out_dir; -> run_id.

    run_id names the run the files belong to (None: continue the run whose
    checkpoint is in out_dir, else a new id). `replaces` is the id of an
    earlier run in out_dir that this one replaces (--overwrite): its committed
    tensor file is removed after this commit too.

    On an OSError (disk full, permission, read-only) nothing is half-written:
    temp files are removed, the previous checkpoint stays as it was, and an
    OutputDirError says what happened.
    """
    if not isinstance(meta, dict):
        raise TypeError(f"meta must be a dict, got {type(meta).__name__}")
    step = meta.get("step", 0)
    step = int(step) if isinstance(step, int) and step >= 0 else 0
    blob = encode_safetensors(tensors)  # TypeError for a non-host array: a caller's bug
    manifest = {n: {"dtype": d, "shape": list(s)} for n, (d, s) in ((n, describe(a)) for n, a in tensors.items())}
    # Serialise meta before touching the disk: a non-JSON value must not leave files behind.
    json.dumps(meta)
    delay = WRITE_DELAY
    previous = committed_file(out_dir)  # (run id, tensor file) of the checkpoint being replaced
    if run_id is None:
        run_id = previous[0] if previous[0] else new_run_id()
    if not _RUN_ID.fullmatch(str(run_id)):
        raise ValueError(f"run_id must be 8 hex digits, got {run_id!r}")
    name = f"ckpt-{step:08d}-{run_id}-{secrets.token_hex(4)}.safetensors"
    final = os.path.join(out_dir, name)
    tmp = os.path.join(out_dir, f"{_TMP_PREFIX}{name}")
    tmp_index = os.path.join(out_dir, f"{_TMP_PREFIX}{INDEX}-{run_id}-{secrets.token_hex(4)}")
    committed = False
    try:
        os.makedirs(out_dir, exist_ok=True)
        _clean_temps(out_dir, run_id)
        size, sha = _write_file(tmp, blob, delay)
        os.replace(tmp, final)
        _fsync_dir(out_dir)
        if delay:
            time.sleep(delay)
        index = {"format": FORMAT, "version": VERSION, "run_id": run_id, "file": name, "size": size,
                 "sha256": sha, "tensors": manifest, "saved_at": time.time(), "meta": meta}
        _write_file(tmp_index, json.dumps(index, indent=1).encode("utf-8"), delay)
        os.replace(tmp_index, os.path.join(out_dir, INDEX))  # the commit point
        committed = True
        _fsync_dir(out_dir)
    except OSError as e:
        raise output_dir_error(out_dir, e, "save the checkpoint") from None
    finally:  # also on KeyboardInterrupt: leave no temp files, and no orphan if not committed
        _remove(tmp)
        _remove(tmp_index)
        if not committed:
            _remove(final)
    prev_run, prev_file = previous
    if prev_file and prev_file != name and (prev_run in (run_id, replaces) or (prev_run is None and replaces)):
        _remove(os.path.join(out_dir, prev_file))  # the checkpoint this one supersedes
    _clean_old(out_dir, run_id, keep=name)
    return run_id


def committed_file(out_dir: str) -> tuple:
    """(run id or None, tensor file name or None) of the committed checkpoint in out_dir; (None, None)
    when there is none or it is unreadable (then nothing of it is ever removed)."""
    try:
        with open(os.path.join(out_dir, INDEX), "rb") as f:
            index = json.loads(f.read(MAX_INDEX_BYTES).decode("utf-8"))
    except (OSError, ValueError, RecursionError):
        return None, None
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        return None, None
    run, name = index.get("run_id"), index.get("file")
    run = run if isinstance(run, str) and _RUN_ID.fullmatch(run) else None
    name = name if isinstance(name, str) and _TENSOR_FILE.fullmatch(name) else None
    return run, name


def _ours(f: str, run_id: str) -> bool:
    """A tensor or temp file that a save of run `run_id` wrote (its name carries the id)."""
    if f.startswith(_TMP_PREFIX):
        rest = f[len(_TMP_PREFIX):]
        return (_TENSOR_FILE.fullmatch(rest) is not None and f"-{run_id}-" in rest) or \
            rest.startswith(f"{INDEX}-{run_id}-")
    return _TENSOR_FILE.fullmatch(f) is not None and f.split("-")[2] == run_id and f.count("-") == 3


def _clean_temps(out_dir: str, run_id: str) -> None:
    """Temp files left by a killed writer of this run (the run lock guarantees none is being written now)."""
    for f in os.listdir(out_dir):
        if f.startswith(_TMP_PREFIX) and _ours(f, run_id):
            _remove(os.path.join(out_dir, f))


def _clean_old(out_dir: str, run_id: str, keep: str) -> None:
    """This run's superseded tensor files (also orphans of a writer killed before its commit)."""
    for f in os.listdir(out_dir):
        if f != keep and not f.startswith(_TMP_PREFIX) and _ours(f, run_id):
            _remove(os.path.join(out_dir, f))


def run_files(out_dir: str) -> list:
    """The files of an earlier run in out_dir (checkpoint.json, log.jsonl, loss.png) that a new run would
    replace or mix with."""
    return [f for f in RUN_FILES if os.path.lexists(os.path.join(out_dir, f))]


# -- reading -------------------------------------------------------------------------------------

def _index_path(out_dir: str) -> str:
    if os.path.isfile(out_dir) and os.path.basename(out_dir).endswith(".json"):
        return out_dir
    return os.path.join(out_dir, INDEX)


def has_checkpoint(out_dir: str) -> bool:
    return os.path.isfile(_index_path(out_dir))


def _read_index(path: str) -> dict:
    """checkpoint.json -> validated dict; every defect is a CheckpointError."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_INDEX_BYTES + 1)
    except FileNotFoundError:
        raise CheckpointError(f"no checkpoint in {os.path.dirname(path) or '.'!r} ({INDEX} is missing); "
                              f"train without --resume to start one") from None
    except OSError as e:
        raise CheckpointError(f"cannot read checkpoint {path!r}: {e.strerror}; check its permissions") from None
    bad = f"checkpoint {path!r} is damaged"
    if len(raw) > MAX_INDEX_BYTES:
        raise CheckpointError(f"{bad}: it is larger than {MAX_INDEX_BYTES} bytes; {DAMAGED_FIX}")
    try:
        index = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise CheckpointError(f"{bad}: not valid JSON ({str(e)[:80]}); {DAMAGED_FIX}") from None
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise CheckpointError(f"{path!r} is not a tinyllm checkpoint (no \"format\": \"{FORMAT}\"); {DAMAGED_FIX}")
    if index.get("version") != VERSION:
        raise CheckpointError(f"checkpoint {path!r} has format version {str(index.get('version'))[:20]}, "
                              f"this tinyllm reads version {VERSION}; train afresh or use a matching tinyllm")
    name, size, sha, tensors, meta = (index.get(k) for k in ("file", "size", "sha256", "tensors", "meta"))
    if not isinstance(name, str) or not _TENSOR_FILE.fullmatch(name):  # also stops path tricks like ../x
        raise CheckpointError(f"{bad}: its tensor file name {str(name)[:80]!r} is invalid; {DAMAGED_FIX}")
    if type(size) is not int or size < 0 or not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise CheckpointError(f"{bad}: its size or sha256 entry is invalid; {DAMAGED_FIX}")
    if not isinstance(meta, dict):
        raise CheckpointError(f"{bad}: its \"meta\" entry is not an object; {DAMAGED_FIX}")
    if not isinstance(tensors, dict) or not all(
            isinstance(v, dict) and isinstance(v.get("dtype"), str) and isinstance(v.get("shape"), list)
            and all(type(s) is int and s >= 0 for s in v["shape"]) for v in tensors.values()):
        raise CheckpointError(f"{bad}: its tensor list is malformed; {DAMAGED_FIX}")
    return index


def read_index(out_dir: str) -> dict:
    """The last committed checkpoint.json, validated: "meta", "tensors" ({name: {dtype, shape}}) and the
    tensor file's "size", for checks made before the tensor file is read."""
    return _read_index(_index_path(out_dir))


def read_meta(out_dir: str) -> dict:
    """The meta of the last committed checkpoint, from checkpoint.json alone (the tensor file is not read)."""
    return read_index(out_dir)["meta"]


def load_checkpoint(out_dir: str) -> tuple:
    """-> (tensors: {name: host NumPy array}, meta: dict) of the last committed checkpoint.

    out_dir may also be the path of a checkpoint.json. Raises CheckpointError
    (one line: the problem and what to do) for anything missing or damaged.
    """
    path = _index_path(out_dir)
    folder = os.path.dirname(path)
    for attempt in range(3):  # a trainer may commit a newer checkpoint while we read: read again
        index = _read_index(path)
        tpath = os.path.join(folder, index["file"])
        try:
            with open(tpath, "rb") as f:
                data = f.read(index["size"] + 1)
            break
        except FileNotFoundError:
            if attempt == 2:
                raise CheckpointError(f"checkpoint {path!r} names {index['file']!r}, which is missing; {DAMAGED_FIX}") from None
            time.sleep(0.05)
        except OSError as e:
            raise CheckpointError(f"cannot read {tpath!r}: {e.strerror}; check its permissions") from None
    if len(data) != index["size"]:
        raise CheckpointError(f"tensor file {tpath!r} is {'truncated' if len(data) < index['size'] else 'longer than recorded'} "
                              f"({len(data) if len(data) <= index['size'] else 'more than ' + str(index['size'])} "
                              f"bytes, {index['size']} expected); {DAMAGED_FIX}")
    if hashlib.sha256(data).hexdigest() != index["sha256"]:
        raise CheckpointError(f"tensor file {tpath!r} does not match its recorded sha256 (corrupted or modified); {DAMAGED_FIX}")
    try:
        tensors, _ = decode_safetensors(data)
    except SafetensorsFormatError as e:
        raise CheckpointError(f"tensor file {tpath!r} is not valid safetensors: {e}; {DAMAGED_FIX}") from None
    manifest = index["tensors"]
    if set(manifest) != set(tensors):
        diff = sorted(set(manifest) ^ set(tensors))[:5]
        raise CheckpointError(f"tensor file {tpath!r} does not hold the tensors {INDEX} lists (differ: {diff}); {DAMAGED_FIX}")
    for n, a in tensors.items():
        code, shape = describe(a)
        if code != manifest[n]["dtype"] or list(shape) != manifest[n]["shape"]:
            raise CheckpointError(f"tensor {n!r} in {tpath!r} is {code}{list(shape)}, {INDEX} records "
                                  f"{manifest[n]['dtype']}{manifest[n]['shape']}; {DAMAGED_FIX}")
    return tensors, index["meta"]
