"""Faults a training run must survive: SIGKILL mid-checkpoint, Ctrl-C, nan/inf,
out of memory, disk full, unwritable output, a second run, bad data.

Driven through tests/faultloop.py (the minimal loop over the checkpoint /
lock / guard API) in-process, where a fault is monkeypatched in, and as a
subprocess, where it is killed. tests/test_faults_cli.py runs the same
faults against the real `python -m tinyllm train`.
"""
import errno
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import faultloop
from tinyllm.train import lock as lk
from tinyllm.train.checkpoint import (INDEX, CheckpointError, OutputDirError, has_checkpoint, load_checkpoint,
                                      prepare_output_dir, save_checkpoint)
from tinyllm.guards import InterruptGuard, NonFiniteError, check_finite, human_bytes, oom_message
from tinyllm.train.lock import LOCK_NAME, LockError, RunLock

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LOOP = os.path.join(HERE, "faultloop.py")
SLOWSAVE = os.path.join(HERE, "slowsave.py")


# -- helpers ------------------------------------------------------------------------------------

def snapshot(d) -> dict:
    """{file name: sha256} of everything in d (the run lock is released, so it is absent)."""
    return {f: hashlib.sha256(open(os.path.join(d, f), "rb").read()).hexdigest()
            for f in sorted(os.listdir(d)) if os.path.isfile(os.path.join(d, f))}


def temps(d) -> list:
    return [f for f in os.listdir(d) if f.startswith(".tmp")]


def spawn(out, steps, *args, delay=0.0, **kw):
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=ROOT)
    slow = [SLOWSAVE, str(delay)] if delay else []  # checkpoint saves slowed down: tests/slowsave.py
    return subprocess.Popen([sys.executable, *slow, LOOP, str(out), str(steps), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def reference(tmp_path, steps):
    """A straight, uninterrupted run: its losses and final tensors."""
    out = str(tmp_path / "reference")
    assert faultloop.main([out, str(steps)]) == 0
    return load_checkpoint(out)


def wait_until(cond, proc, timeout=30.0, poll=0.0005):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        if proc is not None and proc.poll() is not None:
            return False
        time.sleep(poll)
    raise AssertionError("timed out waiting for the subprocess")


def _committed_file(d):
    try:
        return json.load(open(os.path.join(d, INDEX)))["file"]
    except (OSError, ValueError, KeyError):
        return None


def committed_step(d) -> int:
    """The step of the committed checkpoint in d (0 if none yet)."""
    try:
        return int(json.load(open(os.path.join(d, INDEX)))["meta"]["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def kill_at(out, p, phase, rng):
    """Let p commit at least one new checkpoint (so every run makes progress), then SIGKILL it
    in `phase` of a later write, or at a random moment. -> whether p was still running."""
    base = committed_step(out)
    alive = wait_until(lambda: committed_step(out) > base, p, timeout=120, poll=0.002)
    if alive and phase == "random":
        time.sleep(rng.uniform(0.0, 0.3))
        alive = p.poll() is None
    elif alive:
        old = set(os.listdir(out))
        alive = wait_until(lambda: PHASES[phase](out, old), p)
    p.kill()  # SIGKILL
    _, err = p.communicate()
    assert "Traceback" not in err, err
    return alive


def same_tensors(a, b):
    assert sorted(a) == sorted(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


# -- SIGKILL at every phase of a checkpoint write, then exact resume ----------------------------

PHASES = {  # what the directory shows while a save is in that phase
    "tensor-temp": lambda d, old: any(f.startswith(".tmp-ckpt-") and f not in old for f in os.listdir(d)),
    "tensor-renamed": lambda d, old: any(f.startswith("ckpt-") and f not in old and f != _committed_file(d)
                                         for f in os.listdir(d)),
    "index-temp": lambda d, old: any(f.startswith(".tmp-checkpoint.json") and f not in old for f in os.listdir(d)),
}


@pytest.mark.slow
def test_sigkill_at_any_moment_keeps_last_checkpoint_and_resume_is_exact(tmp_path):
    steps = 60
    ref_tensors, ref_meta = reference(tmp_path, steps)
    out = str(tmp_path / "run")
    rng = random.Random(0)
    plan = ["tensor-temp", "tensor-renamed", "index-temp", "random", "tensor-temp", "index-temp",
            "tensor-renamed", "random", "random"]
    seen_mid_write, last_step = [], 0
    for phase in plan:
        p = spawn(out, steps, delay=0.003)
        if kill_at(out, p, phase, rng):
            leftovers = [f for f in os.listdir(out) if f.startswith(".tmp") or
                         (f.startswith("ckpt-") and f != _committed_file(out))]
            if leftovers:
                seen_mid_write.append((phase, leftovers))
        if not has_checkpoint(out):
            continue  # killed before the first commit: nothing to keep yet
        tensors, meta = load_checkpoint(out)  # must always load (size, hash, shapes verified)
        assert meta["step"] >= last_step, "a kill must never take a run backwards"
        assert meta["losses"] == ref_meta["losses"][:meta["step"]], "resumed steps must match a straight run"
        last_step = meta["step"]
    assert last_step < steps, "the runs finished before all kills landed; raise `steps`"
    assert len(seen_mid_write) >= 3, f"too few kills landed mid-write: {seen_mid_write}"
    # finish without faults: identical losses and bit-identical weights + optimizer state
    assert faultloop.main([out, str(steps)]) == 0
    tensors, meta = load_checkpoint(out)
    assert meta["losses"] == ref_meta["losses"]
    same_tensors(tensors, ref_tensors)
    assert not temps(out)
    assert len([f for f in os.listdir(out) if f.endswith(".safetensors")]) == 1  # killed writers' files cleaned up


def test_kill_between_half_runs_gives_identical_result(tmp_path):
    """N straight == N/2, SIGKILL (mid-write), resume to N: same losses, same final weights."""
    steps = 10
    ref_tensors, ref_meta = reference(tmp_path, steps)
    out = str(tmp_path / "run")
    assert faultloop.main([out, str(steps // 2)]) == 0
    p = spawn(out, steps, delay=0.01)
    old = set(os.listdir(out))
    wait_until(lambda: PHASES["tensor-temp"](out, old), p)
    p.kill()
    p.communicate()
    assert load_checkpoint(out)[1]["step"] >= steps // 2
    assert faultloop.main([out, str(steps)]) == 0
    tensors, meta = load_checkpoint(out)
    assert meta["losses"] == ref_meta["losses"]
    same_tensors(tensors, ref_tensors)


# -- Ctrl-C ---------------------------------------------------------------------------------------

def test_first_sigint_finishes_the_step_saves_and_exits_130(tmp_path):
    steps = 40
    ref_tensors, ref_meta = reference(tmp_path, steps)
    out = str(tmp_path / "run")
    p = spawn(out, steps, delay=0.002)
    first = p.stdout.readline()
    assert first.startswith("step 1 "), first
    p.send_signal(signal.SIGINT)
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 130, stderr
    assert "finishing this step and saving" in stderr
    last = [ln for ln in (first + stdout).splitlines() if ln.startswith("step ")][-1]
    k = int(last.split()[1])
    assert f"interrupted: checkpoint of step {k} saved in {out}" in stdout
    assert load_checkpoint(out)[1]["step"] == k and not temps(out) and not os.path.exists(os.path.join(out, LOCK_NAME))
    assert faultloop.main([out, str(steps)]) == 0  # and the resume is exact
    tensors, meta = load_checkpoint(out)
    assert meta["losses"] == ref_meta["losses"]
    same_tensors(tensors, ref_tensors)


def test_second_sigint_stops_at_once_abandoning_the_write(tmp_path):
    out = str(tmp_path / "run")
    assert faultloop.main([out, "2"]) == 0
    before = snapshot(out)
    p = spawn(out, 10, delay=0.05)  # one tensor write takes > 2 s
    old = set(os.listdir(out))
    assert wait_until(lambda: PHASES["tensor-temp"](out, old), p)
    p.send_signal(signal.SIGINT)
    time.sleep(0.1)
    p.send_signal(signal.SIGINT)
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 130, stderr
    assert "stopped at once" in stderr and "interrupted: checkpoint" not in stdout
    assert "Traceback" not in stderr
    # the write in progress was abandoned and cleaned up; the previous checkpoint is untouched
    assert snapshot(out) == before
    assert load_checkpoint(out)[1]["step"] == 2


def test_interrupt_guard_restores_handler_and_is_a_noop_off_main_thread():
    import threading
    old = signal.getsignal(signal.SIGINT)
    with InterruptGuard() as g:
        assert signal.getsignal(signal.SIGINT) == g._handler
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)
        assert g.requested
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.5)
    assert signal.getsignal(signal.SIGINT) == old
    box = {}

    def worker():
        with InterruptGuard() as g2:
            box["requested"] = g2.requested
    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert box == {"requested": False} and signal.getsignal(signal.SIGINT) == old


# -- nan / inf ------------------------------------------------------------------------------------

def test_nonfinite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert faultloop.main([out, "1", "--lr", "1e30"]) == 0  # weights ~1e30: the next forward overflows
    before = snapshot(out)
    capsys.readouterr()
    with np.errstate(all="ignore"):
        assert faultloop.main([out, "5", "--lr", "1e30"]) == 3
    err = capsys.readouterr().err
    assert "step 2: the loss is nan" in err or "step 2: the gradient norm is" in err, err
    assert "--skip-nonfinite" in err and "learning rate" in err
    assert snapshot(out) == before  # bytes identical: nothing was written for the bad step


def test_skip_nonfinite_skips_and_counts(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert faultloop.main([out, "1", "--lr", "1e30"]) == 0
    with np.errstate(all="ignore"):
        assert faultloop.main([out, "5", "--lr", "1e30", "--skip-nonfinite"]) == 0
    assert "skipped 4 non-finite step(s)" in capsys.readouterr().out
    meta = load_checkpoint(out)[1]
    assert meta["skipped"] == 4 and meta["step"] == 5 and len(meta["losses"]) == 1


@pytest.mark.parametrize("loss, norm, word", [(float("nan"), 1.0, "loss is nan"), (float("inf"), 1.0, "loss is inf"),
                                              (1.0, float("inf"), "gradient norm is inf"),
                                              (1.0, float("-inf"), "gradient norm is -inf"),
                                              (1.0, float("nan"), "gradient norm is nan")])
def test_check_finite_names_step_and_value(loss, norm, word):
    with pytest.raises(NonFiniteError, match=f"step 17: the {word}.*--lr.*--skip-nonfinite"):
        check_finite(17, loss, norm)
    check_finite(17, 1.0, 2.0)
    check_finite(17, 1.0, None)


# -- out of memory (CuPy's exception simulated: no GPU needed) ----------------------------------

def _cupy_oom(nbytes, so_far):
    cls = type("OutOfMemoryError", (MemoryError,), {"__module__": "cupy.cuda.memory"})
    return cls(f"Out of memory allocating {nbytes:,} bytes (allocated so far: {so_far:,} bytes).")


def test_gpu_out_of_memory_is_one_line_and_checkpoint_intact(tmp_path, capsys, monkeypatch):
    out = str(tmp_path / "run")
    assert faultloop.main([out, "2"]) == 0
    before = snapshot(out)
    from tinyllm.models import GPT

    def forward(self, *a, **k):
        raise _cupy_oom(805_306_368, 7_516_192_768)
    monkeypatch.setattr(GPT, "forward", forward)
    capsys.readouterr()
    assert faultloop.main([out, "4"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == ("error: out of GPU memory: allocating 768.0 MiB failed with 7.0 GiB already in use; "
                   "use a smaller --batch-size or --block-size (or a smaller model)")
    assert snapshot(out) == before


def test_oom_message_forms():
    assert "allocating 1.0 GiB" in oom_message(_cupy_oom(2 ** 30, 0))
    bare = type("OutOfMemoryError", (Exception,), {})("something")
    assert oom_message(bare) == "out of GPU memory; use a smaller --batch-size or --block-size (or a smaller model)"
    cuda = RuntimeError("cudaErrorMemoryAllocation: out of memory")
    assert "cudaErrorMemoryAllocation" in oom_message(cuda)
    try:
        np.empty(2 ** 62, dtype=np.uint8)
    except MemoryError as e:
        assert oom_message(e).startswith("out of host memory: allocating 4.00 EiB failed; use a smaller")
    assert oom_message(ValueError("Out of range")) is None
    assert oom_message(KeyError("x")) is None
    assert human_bytes(512) == "512 bytes" and human_bytes(1536) == "1.5 KiB"


# -- disk full / unwritable output directory -----------------------------------------------------

class Disk:
    """Monkeypatched os.write that fails with `err` once `budget` bytes have been written."""

    def __init__(self, monkeypatch, budget, err=errno.ENOSPC):
        self.budget, self.err, self.real = budget, err, os.write
        monkeypatch.setattr(os, "write", self)

    def __call__(self, fd, data):
        if len(data) > self.budget:
            raise OSError(self.err, os.strerror(self.err))
        self.budget -= len(data)
        return self.real(fd, data)


@pytest.mark.parametrize("where", ["probe", "tensor-file", "index-file"])
def test_disk_full_mid_save_keeps_old_checkpoint_and_leaves_no_temps(tmp_path, capsys, monkeypatch, where):
    out = str(tmp_path / "run")
    assert faultloop.main([out, "2"]) == 0
    before = snapshot(out)
    size = json.load(open(os.path.join(out, INDEX)))["size"]
    budget = {"probe": 0, "tensor-file": 200 + size // 2, "index-file": 200 + size + 500}[where]
    capsys.readouterr()
    Disk(monkeypatch, budget)
    assert faultloop.main([out, "4"]) == 2
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the disk is full; free some disk space or point --out" in err, err
    assert snapshot(out) == before, "the previous checkpoint must be byte-identical"
    assert not temps(out)
    assert load_checkpoint(out)[1]["step"] == 2


@pytest.mark.parametrize("fail", ["fsync", "replace-tensor", "replace-index", "open"])
@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EIO])
def test_any_oserror_in_save_is_clean(tmp_path, monkeypatch, fail, err):
    out = str(tmp_path)
    save_checkpoint(out, {"w": np.ones((64, 64), np.float32)}, {"step": 1})
    before = snapshot(out)
    calls = {"n": 0}

    def boom(real, nth):
        def f(*a, **k):
            calls["n"] += 1
            if calls["n"] == nth:
                raise OSError(err, os.strerror(err))
            return real(*a, **k)
        return f
    target, nth = {"fsync": ("fsync", 1), "replace-tensor": ("replace", 1), "replace-index": ("replace", 2),
                   "open": ("open", 1)}[fail]
    monkeypatch.setattr(os, target, boom(getattr(os, target), nth))
    with pytest.raises(OutputDirError) as ei:
        save_checkpoint(out, {"w": np.zeros((64, 64), np.float32)}, {"step": 2})
    monkeypatch.undo()
    msg = str(ei.value)
    assert msg.startswith(f"cannot save the checkpoint in {out!r}: ") and "\n" not in msg
    words = {errno.ENOSPC: "disk is full", errno.EROFS: "read-only", errno.EACCES: "permission denied",
             errno.EIO: "error"}
    assert words[err] in msg.lower(), msg
    assert snapshot(out) == before and not temps(out)
    np.testing.assert_array_equal(load_checkpoint(out)[0]["w"], np.ones((64, 64), np.float32))


def test_output_path_that_is_a_file(tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    with pytest.raises(OutputDirError, match="is a file, not a directory"):
        prepare_output_dir(str(f))


def _unprivileged():
    """A command prefix that runs without root's permission override, or None."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv and subprocess.run([setpriv, "--bounding-set", "-dac_override,-dac_read_search", "true"],
                                  capture_output=True).returncode == 0:
        return [setpriv, "--bounding-set", "-dac_override,-dac_read_search"]
    return None


def _run_unprivileged(out, steps, *args):
    pre = _unprivileged()
    if pre is None:
        pytest.skip("running as root without setpriv: file permissions cannot be enforced here")
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run(pre + [sys.executable, LOOP, str(out), str(steps), *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_unwritable_output_dir_real_permissions(tmp_path):
    out = str(tmp_path / "run")
    assert faultloop.main([out, "2"]) == 0
    before = snapshot(out)
    os.chmod(out, 0o555)
    try:
        r = _run_unprivileged(out, 4)
    finally:
        os.chmod(out, 0o755)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip() == f"error: cannot write in {out!r}: permission denied; point --out at a directory " \
                               f"you can write", r.stderr
    assert snapshot(out) == before


# -- two runs at one output directory -------------------------------------------------------------

def test_second_run_refused_and_stale_lock_taken_over(tmp_path):
    out = str(tmp_path / "run")
    a = spawn(out, 1000, delay=0.002)
    assert a.stdout.readline().startswith("step 1 ")
    b = spawn(out, 1000)
    _, err = b.communicate(timeout=60)
    assert b.returncode == 2
    assert err.strip().startswith(f"error: output directory {out!r} is in use by another run: pid {a.pid} on ")
    assert "point --out at another directory" in err
    a.kill()  # a crash: the lock file stays behind
    a.communicate()
    assert os.path.exists(os.path.join(out, LOCK_NAME))
    assert json.load(open(os.path.join(out, LOCK_NAME)))["pid"] == a.pid
    step = load_checkpoint(out)[1]["step"]
    c = spawn(out, step + 2)
    stdout, err = c.communicate(timeout=60)
    assert c.returncode == 0, err
    assert f"took over the stale lock of pid {a.pid}" in stdout and f"resumed at step {step}" in stdout
    assert not os.path.exists(os.path.join(out, LOCK_NAME))


@pytest.mark.parametrize("use_flock", [True, False])
def test_run_lock_in_process(tmp_path, monkeypatch, use_flock):
    if not use_flock:
        monkeypatch.setattr(lk, "fcntl", None)  # the Windows path: O_EXCL + pid check
    out = str(tmp_path)
    with RunLock(out) as first:
        rec = json.load(open(first.path))
        assert rec["pid"] == os.getpid() and rec["host"] and rec["started"] > 0
        with pytest.raises(LockError, match=f"in use by another run: pid {os.getpid()} on "):
            RunLock(out).acquire()
    assert not os.path.exists(os.path.join(out, LOCK_NAME))
    # a lock left by a process that no longer exists is taken over
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    import socket
    with open(os.path.join(out, LOCK_NAME), "w") as f:
        json.dump({"pid": dead.pid, "host": socket.gethostname(), "started": time.time()}, f)
    with RunLock(out) as l2:
        assert l2.taken_over["pid"] == dead.pid
    if not use_flock:  # a live pid's lock (here: our parent) is refused, never stolen
        with open(os.path.join(out, LOCK_NAME), "w") as f:
            json.dump({"pid": os.getppid(), "host": socket.gethostname(), "started": time.time()}, f)
        with pytest.raises(LockError, match=f"pid {os.getppid()}"):
            RunLock(out).acquire()


def test_lock_in_unwritable_place_is_a_clear_error(tmp_path, monkeypatch):
    def deny(*a, **k):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))
    monkeypatch.setattr(os, "open", deny)
    with pytest.raises(OutputDirError, match="cannot create the run lock in .*: the file system is read-only"):
        RunLock(str(tmp_path)).acquire()


# -- bad data -------------------------------------------------------------------------------------

BAD_DATA = {
    "empty": (b"", "is empty"),
    "blank": (b"  \n\n \t\n", "no non-blank line"),
    "not-utf8": (b"hello \xff\xfe world\n" * 20, "not valid UTF-8 (bad byte at offset 6)"),
    "binary": (bytes(range(256)) * 4, "looks binary"),
}


@pytest.mark.parametrize("kind", sorted(BAD_DATA))
def test_bad_data_file_is_one_clear_line(tmp_path, capsys, kind):
    raw, words = BAD_DATA[kind]
    path = tmp_path / "data.txt"
    path.write_bytes(raw)
    out = str(tmp_path / "run")
    assert faultloop.main([out, "2", "--data", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err and str(path) in err, err
    assert not has_checkpoint(out)


def test_data_path_missing_or_directory(tmp_path, capsys):
    assert faultloop.main([str(tmp_path / "o1"), "2", "--data", str(tmp_path / "nope.txt")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert faultloop.main([str(tmp_path / "o2"), "2", "--data", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err


def test_unreadable_data_file_real_permissions(tmp_path):
    path = tmp_path / "secret.txt"
    path.write_text("some text\n" * 100)
    path.chmod(0o000)
    r = _run_unprivileged(tmp_path / "run", 2, "--data", str(path))
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip() == f"error: cannot read data file {str(path)!r}: Permission denied; check its permissions"


# -- checkpoint that does not fit the run --------------------------------------------------------

def test_resume_with_other_data_or_other_model_is_refused(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert faultloop.main([out, "2"]) == 0
    before = snapshot(out)
    other = tmp_path / "other.txt"
    other.write_text("the quick brown fox jumps over the lazy dog. " * 40)
    capsys.readouterr()
    assert faultloop.main([out, "4", "--data", str(other)]) == 2
    err = capsys.readouterr().err
    assert "the data has characters its 27-token tokenizer lacks (' ', '.'" in err
    assert "resume with the data and settings it was trained with" in err and err.count("\n") == 1
    assert faultloop.main([out, "4", "--n-embd", "16"]) == 2
    err = capsys.readouterr().err
    assert "checkpoint does not match the model" in err and "has shape" in err and err.count("\n") == 1
    assert snapshot(out) == before


def test_tampered_checkpoint_refused_on_resume(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert faultloop.main([out, "2"]) == 0
    tensor_file = os.path.join(out, _committed_file(out))
    data = bytearray(open(tensor_file, "rb").read())
    data[len(data) // 2] ^= 0x10
    open(tensor_file, "wb").write(bytes(data))
    capsys.readouterr()
    assert faultloop.main([out, "4"]) == 2
    err = capsys.readouterr().err
    assert "does not match its recorded sha256" in err and "delete it" in err and err.count("\n") == 1
    with pytest.raises(CheckpointError):
        load_checkpoint(out)


def test_reader_never_sees_a_broken_checkpoint_while_a_run_writes(tmp_path):
    """`tinyllm sample` may load while training saves every step: every load succeeds and is consistent."""
    out = str(tmp_path / "run")
    p = spawn(out, 100000)
    try:
        assert p.stdout.readline().startswith("step 1 ")
        steps = []
        for _ in range(150):
            tensors, meta = load_checkpoint(out)
            assert len(meta["losses"]) == meta["step"] and "model.wte.weight" in tensors
            steps.append(meta["step"])
        assert steps == sorted(steps) and steps[-1] > steps[0], "the writer made no progress during the reads"
    finally:
        p.kill()
        p.communicate()
