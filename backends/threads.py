"""One thread policy for the CPU: how many threads tinyllm's matmuls and
kernels may use right now.

Two threads pay only when both cores are free. When another process keeps a
core busy, OpenBLAS still splits every matmul in two and waits for the half
whose thread the scheduler has parked: measured here, a 768x128x384 matmul
went from 1.2 ms on one thread to 12-16 ms on two, and the char MLP tutorial
from 4 s to 11 s (63 s with the machine's other load on top). So the policy watches the machine: every `interval`
seconds it reads how many CPUs other processes kept busy since its last look
(/proc/stat minus this process's own CPU time) and uses only the cores they
leave free, never more than the BLAS pool had when the policy was made
(OpenBLAS sizes that from OMP_NUM_THREADS / OPENBLAS_NUM_THREADS or the CPUs
this process may run on). threadpoolctl reads and sets the pool.

Matmuls are BLAS's to split: the policy sets the BLAS pool to its thread
count whenever that changes. Splitting them ourselves (rows on our helper
threads, BLAS at one thread) was slower than one thread here: six cpu-small
matmul shapes took 5.9 ms split against 5.4 on one thread and 3.3 with
OpenBLAS's two threads (idle machine), whose workers pick up work within
microseconds where a Python hand-off costs tens. The other kernels
(backends/fast_cpu.py) can cut their rows into one part per thread and run
the parts at once on the policy's helpers (NumPy releases the GIL inside its
loops), but that is off (`split_kernels`): OpenBLAS's workers spin for a
while after each matmul, and a helper next to a spinning worker made GELU
2x slower. The helpers wait on a queue, so they never spin against another
process.

The policy starts at one thread and widens after its first look, so a short
script never oversubscribes. Sizing the BLAS pool is the one thing it changes
in the process.
"""
from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

MIN_SPLIT = 1 << 16  # elements (or multiply-adds / 64) of work a part needs to be worth a thread
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
    """threads: how many threads tinyllm's CPU work may use now; refresh() updates it
    at most every `interval` s.

    BLAS gets `threads` for its matmuls. With split_kernels on, the other kernels
    split their work into as many parts and run them at once, one in the calling
    thread and the rest on helper threads that wait on a queue. When another
    process takes a core, both drop to the cores left free.
    """

    # The kernels' own row split: off, because with BLAS holding the second core for matmuls it
    # was slower than one thread (cpu-small, 2 threads, per-op profile sums of two alternating
    # runs: 66.5 and 77.4 ms with kernels in the calling thread vs 104.6 and 107.1 split; GELU,
    # layer norm and attention each faster unsplit), as OpenBLAS's workers spin after each call.
    split_kernels = False

    def __init__(self, max_threads: int | None = None, interval: float = 0.5):
        blas = self._blas = blas_controllers()
        pools = [c.num_threads for c in blas]
        self.max_threads = max(1, max_threads or (max(pools) if pools else usable_cpus()))
        for c in blas:
            c.set_num_threads(1)
        self.interval = interval
        self.threads = 1
        self.pinned = False
        self.others = 0.0  # CPUs other processes kept busy over the last window
        self._helpers = None  # the extra threads, made when first needed
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
            for c in self._blas:
                c.set_num_threads(n)
        self.threads = n

    def pin(self, n: int | None) -> None:
        """Use n threads from now on, whatever the machine does (n=None: follow the machine again)."""
        self.pinned = n is not None
        if n is not None:
            self._set(max(1, n))

    def ranges(self, n: int, work: int) -> list:
        """[(start, stop)] cutting range(n) into one part per thread, fewer when a
        part would hold less than MIN_SPLIT elements of `work`."""
        if not self.split_kernels:
            return [(0, n)]
        k = max(1, min(self.threads, n, work // max(1, MIN_SPLIT)))
        return [(i * n // k, (i + 1) * n // k) for i in range(k)]

    def run(self, fn, ranges: list) -> None:
        """fn(start, stop) for every range at once: the first here, the rest on helpers."""
        if len(ranges) == 1:
            fn(*ranges[0])
            return
        if self._helpers is None or self._helpers._max_workers < len(ranges) - 1:
            self._helpers = ThreadPoolExecutor(len(ranges) - 1, thread_name_prefix="tinyllm")
        others = [self._helpers.submit(fn, *r) for r in ranges[1:]]
        try:
            fn(*ranges[0])
        finally:
            for f in others:
                f.result()

    def describe(self) -> str:
        if self.pinned:
            return f"{self.threads} (pinned)"
        return f"{self.threads} of {self.max_threads} (other processes used {self.others:.2f} CPUs)"
