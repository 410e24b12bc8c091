"""One thread policy for the CPU: how many threads BLAS and tinyllm's own
kernels may use right now.

Two threads pay only when both cores are free. When another process keeps a
core busy, OpenBLAS still splits every matmul in two and waits for the half
whose thread the scheduler has parked: measured here, a 768x128x384 matmul
went from 1.2 ms on one thread to 12-16 ms on two, and the char MLP tutorial
from 4 s to 11 s. So the policy watches the machine: every `interval`
seconds it reads how many CPUs other processes kept busy since its last look
(/proc/stat minus this process's own CPU time) and lets BLAS use only the
cores they leave free, never more than the pool had when the policy was made
(OpenBLAS sizes that from OMP_NUM_THREADS / OPENBLAS_NUM_THREADS or the CPUs
this process may run on). threadpoolctl reads and sets the pools.

The fused kernels (backends/fast_cpu.py) follow the same count: with two
threads they cut their rows in two and run one half on a helper thread (NumPy
releases the GIL inside its loops), so the elementwise work that BLAS does
not do scales too; with one, they run in the calling thread alone. The
helper waits on a queue, so it never spins against another process.

The policy starts at one thread and widens after its first look, so a short
script never oversubscribes. It only touches pools when its choice changes.
"""
from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

MIN_SPLIT = 1 << 16  # elements of work below which a kernel is not worth splitting across threads
BUSY = 0.25  # a core still counts as free while other processes use up to this much of it


def _machine_busy() -> "tuple[float, float] | None":
    """(busy CPU-seconds of the whole machine, seconds on the clock) from /proc/stat, or None."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
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


def blas_controllers():
    """threadpoolctl's controllers of the BLAS libraries loaded in this process."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController().select(user_api="blas").lib_controllers


class ThreadPolicy:
    """threads: what BLAS may use now; refresh() updates it at most every `interval` s."""

    def __init__(self, max_threads: int | None = None, interval: float = 0.5):
        self._blas = blas_controllers()
        pools = [c.num_threads for c in self._blas]
        self.max_threads = max(1, max_threads or (max(pools) if pools else 1))
        self.interval = interval
        self.threads = 0
        self.pinned = False
        self.others = 0.0  # CPUs other processes kept busy over the last window
        self._helper = None  # the one extra thread of the kernels, made when first needed
        self._set(1)
        self._last = (_machine_busy(), _own_cpu())
        self._due = time.monotonic() + interval

    def _set(self, n: int) -> None:
        if n != self.threads:
            for c in self._blas:
                c.set_num_threads(n)
            self.threads = n

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

    def pin(self, n: int) -> None:
        """Use n threads from now on, whatever the machine does (n=None: follow the machine again)."""
        self.pinned = n is not None
        if n is not None:
            self._set(max(1, n))

    def ranges(self, n: int, work: int) -> list:
        """[(start, stop)] over range(n): two halves when two threads may run and
        `work` (elements) is worth it, else the whole range."""
        if self.threads < 2 or n < 2 or work < MIN_SPLIT:
            return [(0, n)]
        return [(0, n // 2), (n // 2, n)]

    def run(self, fn, ranges: list) -> None:
        """fn(start, stop) for each range: the second on the helper thread, at the same time."""
        if len(ranges) == 1:
            fn(*ranges[0])
            return
        if self._helper is None:
            self._helper = ThreadPoolExecutor(1, thread_name_prefix="tinyllm-kernel")
        for c in self._blas:  # each half is one thread: BLAS calls inside it must not fan out again
            c.set_num_threads(1)
        try:
            other = self._helper.submit(fn, *ranges[1])
            try:
                fn(*ranges[0])
            finally:
                other.result()
        finally:
            for c in self._blas:
                c.set_num_threads(self.threads)

    def describe(self) -> str:
        if self.pinned:
            return f"{self.threads} (pinned)"
        return f"{self.threads} of {self.max_threads} (other processes used {self.others:.2f} CPUs)"
