"""The faults of test_faults.py against the real `tinyllm train` (python -m tinyllm):
SIGKILL mid-checkpoint and exact resume, Ctrl-C once and twice, nan/inf,
out of memory, disk full (a real tiny tmpfs where the OS allows it, else
skipped; and a simulated ENOSPC), unwritable output, two runs at one
directory, bad data, damaged checkpoints. Every failure must be one line on
stderr, the documented exit code, and the last checkpoint byte-identical.
"""
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from test_faults import PHASES, Disk, _committed_file, _unprivileged, kill_at, same_tensors, temps, wait_until
from tinyllm.cli import main as cli_main
from tinyllm.train.checkpoint import INDEX, has_checkpoint, load_checkpoint
from tinyllm.train.lock import LOCK_NAME

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--device", "cpu", "--n-layer", "1", "--n-head", "2", "--n-embd", "32", "--block-size", "8",
        "--batch-size", "4", "--eval-interval", "1", "--eval-iters", "1", "--samples", "0"]


def ckpt_snapshot(d) -> dict:
    """sha256 of the checkpoint files only (log.jsonl / loss.png are appended to by design)."""
    return {f: hashlib.sha256(open(os.path.join(d, f), "rb").read()).hexdigest() for f in sorted(os.listdir(d))
            if f == INDEX or f.endswith(".safetensors")}


def train(out, *args):
    """In-process `tinyllm train` -> exit code."""
    return cli_main(["train", "--out", str(out), *TINY, *args])


def env():
    return dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=ROOT)


def spawn(out, *args, delay=0.0, tiny=True):
    slow = [os.path.join(ROOT, "tests", "slowsave.py"), str(delay)] if delay else []  # slowed checkpoint saves
    cmd = [sys.executable, *slow, "-m", "tinyllm", "train", "--out", str(out), *(TINY if tiny else []), *args]
    return subprocess.Popen(cmd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def one_error_line(err: str, code_word: str = "error: ") -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(code_word) and "Traceback" not in err, err
    return lines[0]


def read_until(p, prefix, timeout=60):
    end = time.monotonic() + timeout
    seen = []
    while time.monotonic() < end:
        line = p.stdout.readline()
        if not line:
            break
        seen.append(line)
        if line.startswith(prefix):
            return seen
    raise AssertionError(f"no line starting {prefix!r}: {seen}")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A straight 40-step run: losses, evaluations and final tensors."""
    out = str(tmp_path_factory.mktemp("cli") / "reference")
    assert train(out, "--steps", "40") == 0
    return load_checkpoint(out)


def assert_same_run(out, ref):
    tensors, meta = load_checkpoint(out)
    rt, rm = ref
    assert meta["step"] == rm["step"]
    assert meta["losses"] == rm["losses"]
    assert [(e["step"], e["train"], e["val"]) for e in meta["log"]] == \
           [(e["step"], e["train"], e["val"]) for e in rm["log"]]
    same_tensors(tensors, rt)


# -- SIGKILL, mid-write included, then exact resume ----------------------------------------------

@pytest.mark.slow
def test_cli_sigkill_mid_checkpoint_then_resume_is_exact(tmp_path, reference):
    out = str(tmp_path / "run")
    rng = random.Random(1)
    plan = ["tensor-temp", "tensor-renamed", "index-temp", "random", "tensor-temp", "index-temp"]
    mid_write, last = 0, 0
    for phase in plan:
        p = spawn(out, "--steps", "40", *(["--resume"] if has_checkpoint(out) else []), delay=0.003)
        kill_at(out, p, phase, rng)
        mid_write += any(f.startswith(".tmp") or (f.startswith("ckpt-") and f != _committed_file(out))
                         for f in os.listdir(out))
        if has_checkpoint(out):
            _, meta = load_checkpoint(out)  # the last complete checkpoint always loads
            assert meta["step"] >= last and meta["losses"] == reference[1]["losses"][:meta["step"]]
            last = meta["step"]
    assert mid_write >= 3, "too few kills landed in the middle of a checkpoint write"
    assert 0 < last < 40
    assert train(out, "--steps", "40", "--resume") == 0
    assert_same_run(out, reference)
    assert not temps(out) and len([f for f in os.listdir(out) if f.endswith(".safetensors")]) == 1


# -- Ctrl-C ---------------------------------------------------------------------------------------

def test_cli_first_sigint_saves_says_where_exits_130_and_resumes_exactly(tmp_path, reference):
    out = str(tmp_path / "run")
    p = spawn(out, "--steps", "40", delay=0.002)
    read_until(p, "step 2/40")
    p.send_signal(signal.SIGINT)
    stdout, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    meta = load_checkpoint(out)[1]
    k = meta["step"]
    assert 2 <= k < 40
    assert f"interrupted at step {k}/40; checkpoint saved in {out}/; continue with: tinyllm train --resume " \
           f"--out {out}" in err
    assert "Traceback" not in err and not temps(out) and not os.path.exists(os.path.join(out, LOCK_NAME))
    assert train(out, "--steps", "40", "--resume") == 0
    assert_same_run(out, reference)


def test_cli_second_sigint_exits_at_once(tmp_path):
    out = str(tmp_path / "run")
    assert train(out, "--steps", "2") == 0
    before = ckpt_snapshot(out)
    p = spawn(out, "--steps", "40", "--resume", delay=0.05)  # each checkpoint write takes > 2 s
    old = set(os.listdir(out))
    assert wait_until(lambda: PHASES["tensor-temp"](out, old), p)
    p.send_signal(signal.SIGINT)
    time.sleep(0.2)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert "stopped at once" in err and "Traceback" not in err and "checkpoint saved" not in err
    assert ckpt_snapshot(out) == before and not temps(out)  # the abandoned write left nothing behind
    assert load_checkpoint(out)[1]["step"] == 2


# -- nan / inf ------------------------------------------------------------------------------------

DIVERGE = ["--lr", "1e30", "--warmup", "0", "--schedule", "constant"]


def test_cli_nonfinite_stops_exit_3_checkpoint_untouched(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert train(out, "--steps", "1", *DIVERGE) == 0  # weights ~1e30: the next step overflows
    before = ckpt_snapshot(out)
    capsys.readouterr()
    with np.errstate(all="ignore"):
        assert train(out, "--steps", "5", "--resume") == 3
    line = one_error_line(capsys.readouterr().err)
    assert "step 2: the loss is nan" in line or "step 2: the gradient norm is" in line
    assert "--skip-nonfinite" in line
    assert ckpt_snapshot(out) == before


def test_cli_nonfinite_stderr_is_one_line_without_numpy_warnings(tmp_path):
    """Out of process, with Python's default warning filters: no RuntimeWarning noise before the error."""
    out = str(tmp_path / "run")
    assert train(out, "--steps", "1", *DIVERGE) == 0
    r = subprocess.run([sys.executable, "-m", "tinyllm", "train", "--out", out, "--steps", "3", "--resume"],
                       env=env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 3
    one_error_line(r.stderr)


def test_cli_skip_nonfinite_skips_and_counts(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert train(out, "--steps", "1", *DIVERGE) == 0
    capsys.readouterr()
    with np.errstate(all="ignore"):
        assert train(out, "--steps", "5", "--resume", "--skip-nonfinite") == 0
    err = capsys.readouterr().err
    assert err.count("update skipped") == 4 and "(4 so far)" in err
    meta = load_checkpoint(out)[1]
    assert meta["step"] == 5 and meta["skipped"] == 4 and meta["losses"][1:] == [None] * 4


# -- out of memory (simulated CuPy OutOfMemoryError) ---------------------------------------------

def test_cli_gpu_oom_one_line_exit_3_checkpoint_intact(tmp_path, capsys, monkeypatch):
    out = str(tmp_path / "run")
    assert train(out, "--steps", "2") == 0
    before = ckpt_snapshot(out)
    from tinyllm.models import GPT
    oom = type("OutOfMemoryError", (MemoryError,), {"__module__": "cupy.cuda.memory"})

    def forward(self, *a, **k):
        raise oom("Out of memory allocating 3,221,225,472 bytes (allocated so far: 12,884,901,888 bytes).")
    monkeypatch.setattr(GPT, "forward", forward)
    capsys.readouterr()
    assert train(out, "--steps", "4", "--resume") == 3
    line = one_error_line(capsys.readouterr().err)
    assert line == ("error: out of GPU memory: allocating 3.0 GiB failed with 12.0 GiB already in use; "
                    "use a smaller --batch-size or --block-size (or a smaller model)")
    assert ckpt_snapshot(out) == before


# -- disk full, unwritable output ----------------------------------------------------------------

def test_cli_enospc_during_checkpoint_write(tmp_path, capsys, monkeypatch):
    out = str(tmp_path / "run")
    assert train(out, "--steps", "2") == 0
    before = ckpt_snapshot(out)
    size = json.load(open(os.path.join(out, INDEX)))["size"]
    capsys.readouterr()
    Disk(monkeypatch, 200 + size // 3)  # room for the probe and the lock, then full mid tensor file
    assert train(out, "--steps", "4", "--resume") == 2
    monkeypatch.undo()
    line = one_error_line(capsys.readouterr().err)
    assert line == f"error: cannot save the checkpoint in {out!r}: the disk is full; free some disk space or " \
                   f"point --out at another directory"
    assert ckpt_snapshot(out) == before and not temps(out)
    assert train(out, "--steps", "4", "--resume") == 0  # space freed: the run goes on from where it was


@pytest.mark.parametrize("victim", ["log.jsonl", "loss.png"])
def test_cli_output_files_on_a_full_device(tmp_path, capsys, victim):
    """log.jsonl / loss.png pointing at /dev/full (every write: ENOSPC): a clear line or a clean run, never
    a traceback, and the checkpoint is never damaged."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    out = str(tmp_path / "run")
    assert train(out, "--steps", "2") == 0
    before = ckpt_snapshot(out)
    os.remove(os.path.join(out, victim))
    os.symlink("/dev/full", os.path.join(out, victim))
    capsys.readouterr()
    rc = train(out, "--steps", "4", "--resume")
    err = capsys.readouterr().err
    if victim == "log.jsonl":
        assert rc == 2
        assert one_error_line(err) == f"error: cannot write the training log log.jsonl in {out!r}: the disk is " \
                                      f"full; free some disk space or point --out at another directory"
        assert ckpt_snapshot(out) == before
    else:  # the plot is replaced atomically (or skipped with a note): training itself is unaffected
        assert rc == 0 and "Traceback" not in err, err
        assert load_checkpoint(out)[1]["step"] == 4


DRIVER = textwrap.dedent("""
    import hashlib, json, os, subprocess, sys
    mnt, free = sys.argv[1], int(sys.argv[2])
    out = os.path.join(mnt, "run")
    tiny = json.loads(sys.argv[3])
    def run(*a):
        r = subprocess.run([sys.executable, "-m", "tinyllm", "train", "--out", out, *tiny, *a],
                           capture_output=True, text=True)
        return r.returncode, r.stderr
    def snap():
        return {f: hashlib.sha256(open(os.path.join(out, f), "rb").read()).hexdigest()
                for f in sorted(os.listdir(out)) if f == "checkpoint.json" or f.endswith(".safetensors")}
    rc0, _ = run("--steps", "2")
    before = snap()
    filler = os.path.join(mnt, "filler")
    with open(filler, "wb") as f:   # fill the file system to the last byte
        try:
            while True:
                f.write(b"\\0" * 65536); f.flush()
        except OSError:
            pass
    with open(filler, "r+b") as f:  # then give back `free` bytes
        f.truncate(max(0, os.path.getsize(filler) - free))
    rc, err = run("--steps", "6", "--resume")
    print(json.dumps({"rc0": rc0, "rc": rc, "err": err, "same": snap() == before,
                      "files": sorted(os.listdir(out))}))
""")


def _tmpfs_supported():
    if shutil.which("unshare") is None:
        return False
    r = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt && umount /mnt"],
                       capture_output=True)
    return r.returncode == 0


@pytest.mark.parametrize("free", [0, 8 * 1024, 96 * 1024])
def test_cli_real_disk_full_on_a_tiny_tmpfs(tmp_path, free):
    if not _tmpfs_supported():
        pytest.skip("cannot mount a private tmpfs here (needs unshare -m and CAP_SYS_ADMIN)")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    drv = tmp_path / "driver.py"
    drv.write_text(DRIVER)
    cmd = f"mount -t tmpfs -o size=1m tmpfs {mnt} && exec {sys.executable} {drv} {mnt} {free} '{json.dumps(TINY)}'"
    r = subprocess.run(["unshare", "-m", "sh", "-c", cmd], env=env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["rc0"] == 0
    assert res["rc"] == 2, res["err"]
    line = one_error_line(res["err"])
    assert "the disk is full; free some disk space or point --out at another directory" in line, line
    assert res["same"], "the previous checkpoint must be byte-identical"
    assert not [f for f in res["files"] if f.startswith(".tmp")], res["files"]


def test_cli_unwritable_output_dir(tmp_path):
    pre = _unprivileged()
    if pre is None:
        pytest.skip("running as root without setpriv: file permissions cannot be enforced here")
    out = str(tmp_path / "run")
    assert train(out, "--steps", "2") == 0
    before = ckpt_snapshot(out)
    os.chmod(out, 0o555)
    try:
        r = subprocess.run(pre + [sys.executable, "-m", "tinyllm", "train", "--out", out, "--steps", "4", "--resume"],
                           env=env(), capture_output=True, text=True, timeout=120)
    finally:
        os.chmod(out, 0o755)
    assert r.returncode == 2
    line = one_error_line(r.stderr)
    assert line == f"error: cannot write in {out!r}: permission denied; point --out at a directory you can write"
    assert ckpt_snapshot(out) == before


# -- two runs, one directory --------------------------------------------------------------------------

def test_cli_second_run_refused_then_stale_lock_taken_over(tmp_path):
    out = str(tmp_path / "run")
    a = spawn(out, "--steps", "100000", delay=0.002)
    read_until(a, "step 1/")
    b = subprocess.run([sys.executable, "-m", "tinyllm", "train", "--out", out, *TINY, "--steps", "5"],
                       env=env(), capture_output=True, text=True, timeout=120)
    assert b.returncode == 2
    line = one_error_line(b.stderr)
    assert line.startswith(f"error: output directory {out!r} is in use by another run: pid {a.pid} on ")
    a.kill()
    a.communicate()
    assert json.load(open(os.path.join(out, LOCK_NAME)))["pid"] == a.pid  # left behind by the crash
    step = load_checkpoint(out)[1]["step"]
    c = subprocess.run([sys.executable, "-m", "tinyllm", "train", "--out", out, "--steps", str(step + 2), "--resume"],
                       env=env(), capture_output=True, text=True, timeout=120)
    assert c.returncode == 0, c.stderr
    assert f"resuming from step {step}/" in c.stdout
    assert load_checkpoint(out)[1]["step"] == step + 2 and not os.path.exists(os.path.join(out, LOCK_NAME))


# -- bad data: one line, exit 2, nothing created --------------------------------------------------

BAD = {
    "empty": (b"", "is empty"),
    "blank": (b" \n\t\n", "no non-blank line"),
    "too-short": (b"abcdefgh\nijkl\n", "too short for block_size 8"),
    "not-utf8": (b"caf\xe9 au lait\n" * 50, "not valid UTF-8"),
    "binary": (bytes(range(256)) * 8, "looks binary"),
}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_cli_bad_data_file(tmp_path, capsys, kind):
    raw, words = BAD[kind]
    path = tmp_path / "data.txt"
    path.write_bytes(raw)
    out = tmp_path / "run"
    assert train(out, "--data", str(path), "--steps", "3") == 2
    line = one_error_line(capsys.readouterr().err)
    assert words in line and str(path) in line, line
    assert not out.exists(), "nothing may be written for bad input"


def test_cli_data_directory_or_missing(tmp_path, capsys):
    assert train(tmp_path / "o", "--data", str(tmp_path), "--steps", "3") == 2
    assert "is a directory" in one_error_line(capsys.readouterr().err)
    assert train(tmp_path / "o", "--data", str(tmp_path / "missing.txt"), "--steps", "3") == 2
    assert "does not exist" in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "o").exists()


def test_cli_unreadable_data_file_real_exit_code(tmp_path):
    pre = _unprivileged()
    if pre is None:
        pytest.skip("running as root without setpriv: chmod 000 does not stop root from reading")
    path = tmp_path / "secret.txt"
    path.write_text("hello world\n" * 200)
    path.chmod(0)
    r = subprocess.run(pre + [sys.executable, "-m", "tinyllm", "train", "--data", str(path), "--out",
                              str(tmp_path / "o"), *TINY, "--steps", "3"],
                       env=env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert one_error_line(r.stderr) == f"error: cannot read data file {str(path)!r}: Permission denied; " \
                                       f"check its permissions"


# -- damaged or mismatched checkpoints -----------------------------------------------------------

def test_cli_damaged_checkpoint_refused_by_train_and_sample(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert train(out, "--steps", "2") == 0
    tf = os.path.join(out, _committed_file(out))
    data = bytearray(open(tf, "rb").read())
    data[100] ^= 0xFF  # inside the safetensors header
    open(tf, "wb").write(bytes(data))
    capsys.readouterr()
    assert train(out, "--steps", "4", "--resume") == 2
    assert "does not match its recorded sha256" in one_error_line(capsys.readouterr().err)
    assert cli_main(["sample", "--out", out, "--device", "cpu"]) == 2
    assert "does not match its recorded sha256" in one_error_line(capsys.readouterr().err)
    open(os.path.join(out, INDEX), "w").write("{not json")
    assert train(out, "--steps", "4", "--resume") == 2
    assert "not valid JSON" in one_error_line(capsys.readouterr().err)


def test_cli_resume_with_other_data_refused(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert train(out, "--steps", "2") == 0
    before = ckpt_snapshot(out)
    other = tmp_path / "other.txt"
    other.write_text("the quick brown fox jumps over the lazy dog\n" * 100)
    capsys.readouterr()
    assert train(out, "--steps", "4", "--resume", "--data", str(other)) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "the data has characters its 27-token tokenizer lacks (" in line
    assert ckpt_snapshot(out) == before


@pytest.mark.parametrize("how", ["wrong-shape", "missing", "extra"])
def test_cli_consistently_tampered_tensors_refused(tmp_path, capsys, how):
    """A checkpoint that passes its own hash but does not fit the model it describes."""
    from tinyllm.train.checkpoint import save_checkpoint
    out = str(tmp_path / "run")
    assert train(out, "--steps", "2") == 0
    tensors, meta = load_checkpoint(out)
    if how == "wrong-shape":
        tensors["model.wte.weight"] = np.zeros((5, 32), np.float32)
    elif how == "missing":
        del tensors["model.wpe.weight"]
    else:
        tensors["model.surplus"] = np.zeros(3, np.float32)
    save_checkpoint(out, tensors, meta)
    capsys.readouterr()
    assert train(out, "--steps", "4", "--resume") == 2
    line = one_error_line(capsys.readouterr().err)
    assert "checkpoint does not match the model" in line, line
    assert {"wrong-shape": "'wte.weight' has shape (5, 32), expected (27, 32)", "missing": "missing (wpe.weight)",
            "extra": "unexpected tensor(s) (surplus)"}[how] in line, line
    assert cli_main(["sample", "--out", out, "--device", "cpu"]) == 2
    one_error_line(capsys.readouterr().err)
