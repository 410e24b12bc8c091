"""A user's file (--data, --config): say what a path really is, read only regular files.

A FIFO would block open() forever and /dev/zero never ends, so anything but a
regular file is refused before it is opened, and the check is repeated on the
open descriptor (the path may be swapped in between).
"""
from __future__ import annotations

import errno
import os
import stat

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _kind(mode: int) -> str:
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a file"


def path_problem(path: str) -> str | None:
    """What stops `path` from being read as a regular file, as a phrase to follow the path
    ("does not exist", "is a directory, not a regular file", ...), or None when it is one."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            return f"is a symbolic link to {os.readlink(path)!r}, which does not exist"
        return "does not exist"
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "is a symbolic link loop (a link that leads back to itself)"
        if e.errno == errno.ENOTDIR:
            return "does not exist (a part of the path is a file, not a directory)"
        return f"cannot be read ({e.strerror})"
    if not stat.S_ISREG(st.st_mode):
        return f"is {_kind(st.st_mode)}, not a regular file"
    return None


def read_regular_file(path: str, limit: int | None = None) -> bytes:
    """The bytes of a regular file (OSError as from open/read; ValueError naming the problem when it
    is not a regular file or is larger than `limit` bytes)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO swapped in must not block
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"is {_kind(st.st_mode)}, not a regular file")
        if limit is not None and st.st_size > limit:
            raise ValueError(f"is larger than {limit} bytes")
        return f.read(st.st_size + 1 if limit is None else limit + 1)
