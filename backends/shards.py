"""Token shard files on the host: written by `tinyllm prepare`, read back by np.memmap.

A shard is a 32-byte header then the token ids, little-endian:

    magic b"TLLMTOK\\0" | version u32 | itemsize u32 (2: uint16, 4: uint32) | count u64 | 8 reserved bytes

The header says how many tokens follow, so a shard cut short or grown is seen
before a token is read. Training reads each window by offset (ShardSet): no shard is loaded whole,
and a batch reads only its B rows of T+1 tokens.
"""
from __future__ import annotations

import bisect
import hashlib
import os
import struct

import numpy as np

MAGIC = b"TLLMTOK\0"
VERSION = 1
HEADER = struct.Struct("<8sIIQ8x")  # 32 bytes
HEADER_BYTES = HEADER.size
DTYPES = {2: np.dtype("<u2"), 4: np.dtype("<u4")}


def itemsize_for(vocab_size: int) -> int:
    """2 (uint16) when every id fits, else 4 (uint32)."""
    return 2 if vocab_size <= 1 << 16 else 4


class ShardWriter:
    """Appends token ids to one shard file; close() writes the count into the header and returns
    (tokens, sha256 of the token bytes after the header). OSError as from write (ENOSPC...)."""

    def __init__(self, path: str, itemsize: int):
        self.path, self.dtype, self.count = path, DTYPES[itemsize], 0
        self.hash = hashlib.sha256()
        self.f = open(path, "wb")
        self.f.write(HEADER.pack(MAGIC, VERSION, itemsize, 0))

    def write(self, ids) -> int:
        """Append ids (a list, array.array or NumPy array of ints); returns how many."""
        a = np.asarray(ids, dtype=self.dtype)
        buf = a.tobytes()
        self.f.write(buf)
        self.hash.update(buf)
        self.count += a.size
        return int(a.size)

    def close(self) -> tuple:
        self.f.seek(0)
        self.f.write(HEADER.pack(MAGIC, VERSION, self.dtype.itemsize, self.count))
        self.f.flush()
        os.fsync(self.f.fileno())
        self.f.close()
        return self.count, self.hash.hexdigest()

    def abandon(self) -> None:
        self.f.close()


def read_header(path: str) -> tuple:
    """(itemsize, count) from a shard's header; ValueError naming what is wrong."""
    with open(path, "rb") as f:
        head = f.read(HEADER_BYTES)
    if len(head) < HEADER_BYTES:
        raise ValueError(f"is {len(head)} bytes, shorter than a shard header ({HEADER_BYTES})")
    magic, version, itemsize, count = HEADER.unpack(head)
    if magic != MAGIC:
        raise ValueError("is not a tinyllm token shard (its first bytes are not the shard magic)")
    if version != VERSION or itemsize not in DTYPES:
        raise ValueError(f"has shard version {version} / item size {itemsize}, which this tinyllm does not read")
    return itemsize, count


def data_sha256(path: str, chunk: int = 1 << 22) -> str:
    """sha256 of a shard's token bytes (what the manifest records)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(HEADER_BYTES)
        while True:
            b = f.read(chunk)
            if not b:
                return h.hexdigest()
            h.update(b)


class ShardSet:
    """Token shards of one split; windows of `width` tokens drawn across them, read by offset.

    A window never crosses a shard's end: start k (0 <= k < starts) names shard i's local start
    k - first[i], where shard i holds n_i - width + 1 starts (none when it is shorter than a window).
    Each window is one os.pread of (T+1) ids from the shard's open file, not a touch of a memory map:
    a mapping's pages count in the process's RSS (and the kernel maps ~64 KB around each touched page),
    so training through np.memmap grew RSS with the corpus; read by offset it stays flat, the pages
    living in the page cache only. `array(i)` is a shard as np.memmap, for whole-shard reading."""

    def __init__(self, paths: list, width: int = 1):
        self.paths, self.fds, self.sizes, self.dtypes = list(paths), [], [], []
        for p in paths:
            itemsize, count = read_header(p)
            self.dtypes.append(DTYPES[itemsize])
            self.sizes.append(count)
            self.fds.append(os.open(p, os.O_RDONLY))
        self.set_width(width)

    def set_width(self, width: int) -> None:
        """Windows of `width` tokens (block_size + 1): which starts each shard holds."""
        self.width = width
        self.first, n = [], 0
        for size in self.sizes:
            self.first.append(n)
            n += max(0, size - width + 1)
        self.starts = n

    def __len__(self) -> int:
        return sum(self.sizes)

    def __del__(self):
        for fd in getattr(self, "fds", ()):
            os.close(fd)

    def array(self, i: int) -> np.ndarray:
        return np.memmap(self.paths[i], dtype=self.dtypes[i], mode="r", offset=HEADER_BYTES, shape=(self.sizes[i],))

    def windows(self, starts) -> np.ndarray:
        """(B, width) int64: the windows at global starts (each < self.starts)."""
        out = np.empty((len(starts), self.width), dtype=np.int64)
        for r, k in enumerate(np.asarray(starts).tolist()):
            i = bisect.bisect_right(self.first, k) - 1  # a shard too short for a window shares the next's first
            dt = self.dtypes[i]
            n = self.width * dt.itemsize
            buf = os.pread(self.fds[i], n, HEADER_BYTES + (k - self.first[i]) * dt.itemsize)
            if len(buf) != n:  # the file was cut short after it was checked
                raise OSError(f"shard {self.paths[i]} ended early (read {len(buf)} of {n} bytes)")
            out[r] = np.frombuffer(buf, dtype=dt)
        return out
