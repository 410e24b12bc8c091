"""One thread policy for the CPU: how many threads tinyllm's matmuls and kernels may use now.

Every `interval` s it reads how many CPUs other processes kept busy (/proc/stat) and uses only the
cores they leave free (beside a busy core a split matmul waits for its parked half), at most the
smallest BLAS pool. BLAS splits the matmuls; the other kernels cut their rows into pieces that the
calling thread and the policy's helpers take in turn. It starts at one thread, so a short script
never oversubscribes; sizing the BLAS pools is all it changes in the process.
"""
from __future__ import annotations

import os
import time
import threading

from .blas_env import WORKERS_SLEEP

MIN_SPLIT = 1 << 16  # elements (or multiply-adds / 64) of work a part needs to be worth a thread
PIECES = 3  # pieces per thread a split kernel is cut into, taken in turn by whichever thread is free
BUSY = 0.25  # a core still counts as free while other processes use up to this much of it


def cpu_ticks() -> "list[int] | None":
    """The machine's CPU time counters from /proc/stat (user nice system idle iowait irq softirq steal ...), or None."""
    try:
        with open("/proc/stat") as f:
            return [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None


def steal_between(before: "list[int] | None", after: "list[int] | None") -> "float | None":
    """The share of CPU time the hypervisor gave to other guests (steal) between two cpu_ticks() readings."""
    if not before or not after or len(before) < 8 or len(after) < 8:
        return None
    total = sum(after[:8]) - sum(before[:8])
    return (after[7] - before[7]) / total if total > 0 else None


def _machine_busy() -> "tuple[float, float] | None":
    """(busy CPU-seconds of the whole machine, seconds on the clock) from /proc/stat, or None."""
    fields = cpu_ticks()
    if fields is None:
        return None
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    busy = sum(fields[:8]) - idle  # user nice system idle iowait irq softirq steal
    return busy / tick, time.monotonic()


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system


def usable_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def threads_for(ncpu: int, others: float, max_threads: int) -> int:
    """Threads to use when other processes keep `others` of the `ncpu` CPUs busy."""
    free = int(ncpu - others + BUSY)
    return max(1, min(max_threads, free))


class ThreadPolicy:
    """threads: how many threads tinyllm's CPU work may use now; refresh() updates it
    at most every `interval` s.

    The BLAS pools (`blas`: threadpoolctl controllers of the libraries tinyllm calls) get
    `threads` for their matmuls, and the smallest of them bounds it. With split_kernels on, the
    other kernels cut their work into PIECES pieces per thread, which the calling thread and
    threads - 1 helpers (waiting on a lock) take in turn; `on_helper` runs once on each helper
    thread before its first piece (MKL's thread count is set per thread). When another process
    takes a core, both drop to the cores left free.
    """

    split_kernels = WORKERS_SLEEP  # the kernels' own row split: on when OpenBLAS's workers sleep (blas_env.py)

    def __init__(self, max_threads: int | None = None, interval: float = 0.5, blas=(), on_helper=None):
        self._blas = list(blas)
        pools = [c.num_threads for c in self._blas]
        self.max_threads = max(1, max_threads or (min(pools) if pools else usable_cpus()))
        self._blas_threads(1)
        self._on_helper = on_helper
        self.interval = interval
        self.threads = 1
        self.pinned = False
        self.others = 0.0  # CPUs other processes kept busy over the last window
        self._helpers = []  # the extra threads, made when first needed
        self._last = (_machine_busy(), _own_cpu())
        self._due = time.monotonic() + interval

    def refresh(self) -> int:
        """Re-decide from the last window if it is over; the thread count in force."""
        if self.pinned or self.max_threads == 1 or time.monotonic() < self._due:
            return self.threads
        machine, own = _machine_busy(), _own_cpu()
        before, own0 = self._last
        self._last = (machine, own)
        self._due = time.monotonic() + self.interval
        if machine is None or before is None or machine[1] <= before[1]:
            self._set(self.max_threads)  # nothing to read (not Linux): trust the pool size
            return self.threads
        wall = machine[1] - before[1]
        self.others = max(0.0, (machine[0] - before[0]) - (own - own0)) / wall
        self._set(threads_for(usable_cpus(), self.others, self.max_threads))
        return self.threads

    def _set(self, n: int) -> None:
        """Use n threads: the kernels' parts, and the BLAS pool for matmuls."""
        if n != self.threads:
            self._blas_threads(n)
        self.threads = n

    def pin(self, n: int | None) -> None:
        """Use n threads from now on, whatever the machine does (n=None: follow the machine again)."""
        self.pinned = n is not None
        if n is not None:
            self._set(max(1, n))

    def ranges(self, n: int, work: int, per_thread: int | None = None) -> list:
        """[(start, stop)] cutting range(n) into pieces for run(): one while one thread is in use
        (or split_kernels is off), else per_thread (default PIECES) per thread, fewer when a piece
        would hold less than MIN_SPLIT elements of `work`."""
        if not self.split_kernels or self.threads == 1:
            return [(0, n)]
        k = max(1, min((per_thread or PIECES) * self.threads, n, work // max(1, MIN_SPLIT)))
        return [(i * n // k, (i + 1) * n // k) for i in range(k)]

    def run(self, fn, ranges: list) -> None:
        """fn(start, stop) for every range, the calling thread and the helpers each taking the next
        range left until none is: a helper that wakes late (an idle vCPU wakes slowly) takes fewer,
        instead of holding up the rest."""
        n = min(self.threads, len(ranges))
        if n == 1:  # one thread (or one range): all of them here, BLAS's pool left as it is
            for r in ranges:
                fn(*r)
            return
        while len(self._helpers) < n - 1:
            self._helpers.append(_Helper(self._on_helper))
        pending = iter(ranges)  # next() on a list iterator is atomic under the GIL

        def take():
            for r in pending:
                fn(*r)

        self._blas_threads(1)  # each part's matmuls on its own core: two callers sharing BLAS's pool run one at a time
        busy = [h.start(take) for h in self._helpers[:n - 1]]
        try:
            take()
        finally:
            errors = [h.join() for h in busy]  # every helper back in its place before anything is raised
            self._blas_threads(self.threads)
        for e in errors:
            if e is not None:
                raise e

    def _blas_threads(self, n: int) -> None:
        for c in self._blas:
            c.set_num_threads(n)

    def describe(self) -> str:
        if self.pinned:
            return f"{self.threads} (pinned)"
        return f"{self.threads} of {self.max_threads} (other processes used {self.others:.2f} CPUs)"


class _Helper:
    """One daemon thread that runs a part when told: a pair of locks is the cheapest
    hand-off Python has (cheaper than ThreadPoolExecutor's futures: docs/speed.md)."""

    def __init__(self, on_start=None):
        self._go, self._done = threading.Lock(), threading.Lock()
        self._go.acquire()
        self._done.acquire()
        self._job = self._error = None
        self._on_start = on_start
        threading.Thread(target=self._serve, name="tinyllm-helper", daemon=True).start()

    def _serve(self):
        if self._on_start is not None:
            self._on_start()  # e.g. MKL at one thread in the parts (see run): its setting is per thread
        while True:
            self._go.acquire()
            try:
                self._job()
            except BaseException as e:  # handed to the caller, which raises it
                self._error = e
            self._job = None
            self._done.release()

    def start(self, job) -> "_Helper":
        """Run job() on this helper's thread; join() waits for it."""
        self._job = job
        self._go.release()
        return self

    def join(self) -> "BaseException | None":
        """Wait for the job; what it raised, if anything."""
        self._done.acquire()
        error, self._error = self._error, None
        return error
