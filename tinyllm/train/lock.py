"""One training run per output directory.

RunLock(out_dir) holds an exclusive fcntl.flock on out_dir/.tinyllm-lock, which
records pid, hostname and start time. The kernel drops a flock when its
process dies (SIGKILL included), so a lock left by a crashed run is simply
taken over; a second live run gets a LockError naming the holder. Where
fcntl is missing (Windows) the file is created with O_EXCL and a lock whose
pid is no longer alive on this host is taken over.
"""
from __future__ import annotations

import errno
import json
import os
import socket
import time

from .checkpoint import OutputDirError, output_dir_error
from ..errors import LockError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

LOCK_NAME = ".tinyllm-lock"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return False
    return True


def _read_holder(path: str) -> dict:
    try:
        with open(path, "rb") as f:
            d = json.loads(f.read(4096).decode("utf-8", "replace"))
        return d if isinstance(d, dict) else {}
    except (OSError, ValueError):
        return {}


def _foreign(path: str) -> bool:
    """A file at the lock's path that no tinyllm run wrote (never truncate or remove a user's file).
    Empty counts as ours: a run killed between creating and writing it."""
    try:
        with open(path, "rb") as f:
            raw = f.read(4096)
    except FileNotFoundError:
        return False
    except OSError:
        return True
    if not raw:
        return False
    try:
        d = json.loads(raw.decode("utf-8"))
    except ValueError:
        return True
    return not (isinstance(d, dict) and {"pid", "host", "started"} <= set(d))


def _holder_text(d: dict) -> str:
    if not d:
        return "another process"
    started = d.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)) if isinstance(started, (int, float)) else "?"
    return f"pid {d.get('pid', '?')} on {d.get('host', '?')} (started {when})"


class RunLock:
    """with RunLock(out_dir): ... — exclusive use of out_dir for one training run.

    .taken_over holds the previous holder's record when a stale lock was taken over.
    """

    def __init__(self, out_dir: str):
        self.out_dir = out_dir
        self.path = os.path.join(out_dir, LOCK_NAME)
        self.fd = None
        self.taken_over: dict | None = None

    def _record(self) -> bytes:
        return json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}).encode()

    def _refuse(self, holder: dict):
        raise LockError(f"output directory {self.out_dir!r} is in use by another run: {_holder_text(holder)}; "
                        f"wait for it to finish, stop it, or point --out at another directory")

    def check(self) -> None:
        """Raise LockError if a live run holds out_dir now; changes nothing on disk."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return  # no lock file (or unreadable: acquire() will say so)
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as e:
                    if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                        self._refuse(_read_holder(self.path))
                    return
                fcntl.flock(fd, fcntl.LOCK_UN)
            else:
                prev = _read_holder(self.path)
                pid = prev.get("pid")
                if isinstance(pid, int) and (prev.get("host") != socket.gethostname() or _pid_alive(pid)):
                    self._refuse(prev)
        finally:
            os.close(fd)

    def acquire(self) -> "RunLock":
        if os.path.lexists(self.path) and (not os.path.isfile(self.path) or os.path.islink(self.path)
                                           or _foreign(self.path)):
            raise OutputDirError(f"{self.path!r} exists and was not written by tinyllm; tinyllm keeps its run lock "
                                 f"there: move that file, or point --out at another directory")
        try:
            os.makedirs(self.out_dir, exist_ok=True)
            return self._acquire_flock() if fcntl is not None else self._acquire_excl()
        except OSError as e:
            raise output_dir_error(self.out_dir, e, "create the run lock") from None

    def _acquire_flock(self) -> "RunLock":
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                os.close(fd)
                if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    self._refuse(_read_holder(self.path))
                raise
            # The holder may have unlinked the file between our open and flock: then we
            # locked a dead inode and must retry on the current file.
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            prev = _read_holder(self.path)
            if prev:
                self.taken_over = prev  # a crashed run left it; its flock died with it
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, self._record())
            os.fsync(fd)
            self.fd = fd
            return self

    def _acquire_excl(self) -> "RunLock":
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                prev = _read_holder(self.path)
                pid = prev.get("pid")
                if prev.get("host") == socket.gethostname() and isinstance(pid, int) and not _pid_alive(pid):
                    self.taken_over = prev
                    try:
                        os.remove(self.path)
                    except FileNotFoundError:
                        pass
                    continue
                self._refuse(prev)
            os.write(fd, self._record())
            self.fd = fd
            return self
        self._refuse(_read_holder(self.path))

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            os.remove(self.path)  # while still holding the flock: nobody else sees a half state
        except OSError:
            pass
        try:
            os.close(self.fd)  # drops the flock
        finally:
            self.fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


__all__ = ["LockError", "RunLock", "OutputDirError"]
