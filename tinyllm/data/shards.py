"""Training from `tinyllm prepare`'s shards: the manifest checked, the shards mapped, batches drawn across them.

    ds = load_prepared("data/")           # a Dataset whose train / val are backends.shards.ShardSets
    batches = ShardBatcher(ds.train, backend, block_size)

Every start checks each shard's size and header against the manifest (a shard
cut short, grown or swapped is refused in one line); the sha256 of the token
bytes is checked too when the shards total at most VERIFY_BYTES (hashing runs at
about 1 GB/s, so a large corpus is not re-read at every start) or verify=True.
The run stores the manifest's sha256: --resume on other data is refused.
"""
from __future__ import annotations

import hashlib
import json
import os

from backends.shards import HEADER_BYTES, ShardSet, data_sha256, read_header

from ..errors import DataError
from ..ids import check_token_ids
from .datasets import Dataset
from .tokenizers import TokenizerError, tokenizer_from_dict

MANIFEST = "manifest.json"
FORMAT = "tinyllm-token-shards"
VERIFY_BYTES = 256 << 20
FIX = "prepare it again (tinyllm prepare ... --out DIR --overwrite)"


def is_prepared(path) -> bool:
    return isinstance(path, str) and os.path.isfile(os.path.join(path, MANIFEST))


def read_manifest(folder: str) -> tuple:
    """(manifest dict, sha256 of manifest.json)."""
    path = os.path.join(folder, MANIFEST)
    try:
        with open(path, "rb") as f:
            raw = f.read()
        manifest = json.loads(raw)
    except (OSError, ValueError) as e:
        raise DataError(f"cannot read {path}: {getattr(e, 'strerror', None) or e}; {FIX}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DataError(f"{path} is not a tinyllm prepare manifest; {FIX}")
    return manifest, hashlib.sha256(raw).hexdigest()


def _check_shard(folder: str, entry: dict, itemsize: int, verify: bool) -> str:
    path = os.path.join(folder, entry["file"])
    if not os.path.isfile(path):
        raise DataError(f"shard {path} is missing; {FIX}")
    want = HEADER_BYTES + entry["tokens"] * itemsize
    size = os.path.getsize(path)
    if size != want or entry.get("bytes", want) != want:
        raise DataError(f"shard {path} is {size:,} bytes, the manifest says {want:,} (truncated or edited?); {FIX}")
    try:
        got_item, count = read_header(path)
    except ValueError as e:
        raise DataError(f"shard {path} {e}; {FIX}") from None
    if (got_item, count) != (itemsize, entry["tokens"]):
        raise DataError(f"shard {path}'s header says {count:,} tokens of {got_item} bytes, the manifest "
                        f"{entry['tokens']:,} of {itemsize} (edited?); {FIX}")
    if verify and data_sha256(path) != entry["sha256"]:
        raise DataError(f"shard {path} does not match its sha256 in the manifest (edited or damaged); {FIX}")
    return path


def write_manifest(folder: str, manifest: dict) -> None:
    """manifest.json in folder, on disk (fsync) before the folder is renamed into place."""
    with open(os.path.join(folder, MANIFEST), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1)
        f.flush()
        os.fsync(f.fileno())


def shard_paths(folder: str, manifest: dict, split: str, verify: bool | None = None) -> list:
    """The split's shard paths, each held against the manifest (sizes and headers; hashes per VERIFY_BYTES)."""
    try:
        entries = manifest[split]["shards"]
        itemsize = {"uint16": 2, "uint32": 4}[manifest["dtype"]]
        if verify is None:
            verify = sum(int(e["tokens"]) for e in entries) * itemsize <= VERIFY_BYTES
        return [_check_shard(folder, e, itemsize, verify) for e in entries]
    except (KeyError, TypeError) as e:
        raise DataError(f"the manifest in {folder} is damaged (no {e}); {FIX}") from None


def load_prepared(folder: str, width: int | None = None, verify: bool | None = None) -> Dataset:
    """The prepared data in folder as a Dataset (train / val: ShardSets of windows `width` long, set later)."""
    manifest, digest = read_manifest(folder)
    try:
        tok = tokenizer_from_dict(manifest.get("tokenizer"))
    except TokenizerError as e:
        raise DataError(f"the manifest in {folder} holds an unusable tokenizer ({e}); {FIX}") from None
    splits = {s: ShardSet(shard_paths(folder, manifest, s, verify), width or 1) for s in ("train", "val")}
    info = {"manifest_sha256": digest, "prepared": os.path.abspath(folder)}
    return Dataset(os.path.basename(os.path.abspath(folder)), tok, splits["train"], splits["val"], info=info)


class ShardBatcher:
    """Batcher's interface over ShardSets: the same draw (rng.host_integers over the window starts), the
    windows read by offset from the shard files on the host, one copy to the device a batch. The corpus is not
    scanned up front (that would read all of it): each batch's ids are held against vocab_size on the host
    (TokenIdError naming `what`), the tokenizer that wrote them against the model (load_run_data), and the
    shards against the manifest."""

    def __init__(self, shards, backend, block_size: int, vocab_size: int | None = None, what: str = "the tokens"):
        shards.set_width(block_size + 1)
        if shards.starts < 1:
            raise ValueError(f"{len(shards)} tokens hold no window of block_size + 1 = {block_size + 1} in one shard")
        self.backend, self.block_size, self.shards = backend, block_size, shards
        self.vocab_size, self.what = vocab_size, what
        self.n = shards.starts + block_size  # as Batcher: draws 0 <= start < n - block_size

    def batch(self, batch_size: int, rng, rows: slice | None = None):
        starts = rng.host_integers(0, self.n - self.block_size, batch_size)
        try:
            host = self.shards.windows(starts if rows is None else starts[rows])
        except OSError as e:  # a shard cut short or removed while training
            raise DataError(f"cannot read the prepared data: {e}; {FIX}") from None
        if self.vocab_size is not None:
            check_token_ids(host, self.vocab_size, self.what)
        win = self.backend.from_host(host, "int64")
        return win[:, :-1], win[:, 1:]


def batcher_for(tokens, backend, block_size: int, vocab_size: int | None = None, what: str = "the tokens"):
    """A ShardBatcher for prepared shards, the in-memory Batcher for a token stream."""
    if isinstance(tokens, ShardSet):
        return ShardBatcher(tokens, backend, block_size, vocab_size, what)
    from .batches import Batcher

    return Batcher(tokens, backend, block_size, vocab_size, what)
