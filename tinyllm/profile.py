"""Per-op profile: forward and backward time of every op type.

    with profile() as prof:
        _, loss = model(x, y); loss.backward()
        with prof.section("optimizer"):
            opt.step()
    print(prof.table(steps=1))

Inside the block the op registry routes every op call through the profiler
(tinyllm/ops/registry.py: set_hook), so an op is timed however it was
imported, and the backward closure each op records is wrapped too; the
engine routes each backward() pass through it (tinyllm/autograd.py:
set_backward_hook). Nothing is patched: on exit both hooks are removed
(when off, profiling costs one check per op call).
Times are exclusive: an op that calls another op (transpose -> permute) is
charged only for its own work. `sync` (e.g. backend.synchronize) runs
before each clock read so asynchronous devices are timed honestly.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field

from .ops.registry import set_hook
from .autograd import ProductGrad, set_backward_hook

_active = None  # the running Profile (profiles do not nest)


@dataclass
class Profile:
    forward: dict = field(default_factory=dict)   # op name -> [seconds, calls]
    backward: dict = field(default_factory=dict)  # op name -> [seconds, calls]
    sections: dict = field(default_factory=dict)  # section name -> [seconds, calls]
    sync: object = None
    clock: object = time.perf_counter
    _stack: list = field(default_factory=list)    # [op name, child seconds] of ops running now

    def _now(self) -> float:
        if self.sync is not None:
            self.sync()
        return self.clock()

    def _timed(self, table: dict, name: str, fn, *args, **kwargs):
        frame = [name, 0.0]
        self._stack.append(frame)
        t0 = self._now()
        try:
            return fn(*args, **kwargs)
        finally:
            dt = self._now() - t0
            self._stack.pop()
            if self._stack:
                self._stack[-1][1] += dt
            row = table.setdefault(name, [0.0, 0])
            row[0] += dt - frame[1]
            row[1] += 1

    @contextlib.contextmanager
    def section(self, name: str):
        """Time a block that is not an op (optimizer step, clipping, the engine)."""
        t0 = self._now()
        try:
            yield
        finally:
            row = self.sections.setdefault(name, [0.0, 0])
            row[0] += self._now() - t0
            row[1] += 1

    def total(self) -> float:
        return sum(r[0] for t in (self.forward, self.backward, self.sections) for r in t.values())

    def rows(self, steps: int = 1) -> list:
        """[{op, fwd_ms, bwd_ms, calls}] per step, slowest first; sections as ops named [section]."""
        names = set(self.forward) | set(self.backward)
        out = []
        for n in names:
            f = self.forward.get(n, [0.0, 0])
            b = self.backward.get(n, [0.0, 0])
            out.append({"op": n, "fwd_ms": 1e3 * f[0] / steps, "bwd_ms": 1e3 * b[0] / steps,
                        "calls": f[1] // steps})
        for n, (s, c) in self.sections.items():
            out.append({"op": f"[{n}]", "fwd_ms": 1e3 * s / steps, "bwd_ms": 0.0, "calls": c // steps})
        out.sort(key=lambda r: -(r["fwd_ms"] + r["bwd_ms"]))
        return out

    def table(self, steps: int = 1) -> str:
        return format_table(self.rows(steps))


def format_table(rows, indent: str = "", other: dict | None = None, other_name: str = "PyTorch") -> str:
    """Rows of Profile.rows() as an aligned text table with each op's share; `other`
    ({op: ms}, e.g. another framework's step by the same ops) adds a column."""
    total = sum(r["fwd_ms"] + r["bwd_ms"] for r in rows) or 1.0
    extra = f"{other_name + ' ms':>12}" if other is not None else ""
    lines = [f"{'op':<18}{'calls':>6}{'fwd ms':>9}{'bwd ms':>9}{'total':>9}{'share':>7}{extra}"]
    rest = dict(other or {})
    for r in rows:
        t = r["fwd_ms"] + r["bwd_ms"]
        o = f"{rest.pop(r['op']):>12.2f}" if r["op"] in rest else (f"{'':>12}" if other is not None else "")
        lines.append(f"{r['op']:<18}{r['calls']:>6}{r['fwd_ms']:>9.2f}{r['bwd_ms']:>9.2f}{t:>9.2f}"
                     f"{100 * t / total:>6.1f}%{o}")
    for op, ms in sorted(rest.items(), key=lambda kv: -kv[1]):  # the other side's ops with no row here
        lines.append(f"{op:<18}{'':>6}{'':>9}{'':>9}{'':>9}{'':>7}{ms:>12.2f}")
    tail = f"{sum(other.values()):>12.2f}" if other is not None else ""
    lines.append(f"{'sum':<18}{'':>6}{'':>9}{'':>9}{total:>9.2f}{'':>7}{tail}")
    return "\n".join(indent + line for line in lines)


def _timed_backward(prof: Profile, name: str, out, args):
    """Charge out's backward closure to op `name`, unless an inner op already claimed it
    (transpose returns permute's output) or out is one of the inputs (dropout off)."""
    bwd = getattr(out, "_backward", None)
    if bwd is None or getattr(bwd, "_profiled", False) or any(out is a for a in args):
        return

    def timed(g):
        return _charged(prof, name, prof._timed(prof.backward, name, bwd, g))

    timed._profiled = True
    out._backward = timed


class _Charged(ProductGrad):
    """A ProductGrad that the engine makes after the op's closure has returned (into the optimizer's buffer):
    its time is the op's backward too, not the engine's."""
    __slots__ = ("prof", "name")

    def write_into(self, backend, target):
        return self.prof._timed(self.prof.backward, self.name, ProductGrad.write_into, self, backend, target)


def _charged(prof: Profile, name: str, grads):
    if not isinstance(grads, tuple) or not any(type(g) is ProductGrad for g in grads):
        return grads
    out = []
    for g in grads:
        if type(g) is ProductGrad:
            g = _Charged(g.a, g.b)
            g.prof, g.name = prof, name
        out.append(g)
    return tuple(out)


@contextlib.contextmanager
def profile(sync=None, clock=time.perf_counter):
    """Profile every op run inside the block; yields the Profile being filled.

    clock: time.perf_counter (wall, the default) or time.thread_time (CPU time
    of this thread: steadier on a shared machine, single-threaded runs only).
    """
    global _active
    if _active is not None:
        raise RuntimeError("profile() blocks do not nest")
    prof = Profile(sync=sync, clock=clock)

    def hook(name, fn, args, kwargs):
        out = prof._timed(prof.forward, name, fn, *args, **kwargs)
        if isinstance(out, tuple):  # several outputs (unbind), and the tensor joining them to the inputs
            for t in out:
                for u in (t, *getattr(t, "_parents", ())):
                    _timed_backward(prof, name, u, args)
        else:
            _timed_backward(prof, name, out, args)
        return out

    def backward_pass(run):
        # the engine's own time (sort, accumulation) = the whole pass minus the closures
        t0 = prof._now()
        before = sum(r[0] for r in prof.backward.values())
        try:
            return run()
        finally:
            closures = sum(r[0] for r in prof.backward.values()) - before
            row = prof.sections.setdefault("backward engine", [0.0, 0])
            row[0] += prof._now() - t0 - closures
            row[1] += 1

    previous, previous_backward = set_hook(hook), set_backward_hook(backward_pass)
    _active = prof
    try:
        yield prof
    finally:
        set_hook(previous)
        set_backward_hook(previous_backward)
        _active = None
