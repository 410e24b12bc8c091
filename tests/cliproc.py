"""Run the real `tinyllm` command in a child process, for tests of what a shell does to it.

Each child starts with SIGINT at its default (as a shell's foreground command gets it) and runs
under an address-space limit (ulimit -v), so a defect that allocates without bound fails fast with
a MemoryError instead of taking the machine's memory; a timeout stops one that hangs.
"""
import json
import os
import resource
import signal
import subprocess
import sys
import threading

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "8", "--batch-size", "4",
        "--eval-iters", "1", "--samples", "0", "--device", "cpu"]
LIMIT = 3 << 30  # bytes of address space a child may take


def start(*args, cwd=None, limit: int = LIMIT, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": ROOT, "PYTHONUNBUFFERED": "1"}

    def in_child():  # before exec
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        # Ctrl-C as a shell's foreground command gets it: a test run started as a background job
        # (`pytest &` in a script) hands its children SIGINT ignored, and Python then installs no handler
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    return subprocess.Popen([sys.executable, "-m", "tinyllm", *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=in_child, **kw)


def run(*args, timeout=120, **kw):
    p = start(*args, **kw)
    out, err = p.communicate(timeout=timeout)
    return p.returncode, out, err


def read_within(stream, n: int, seconds: float) -> str:
    """Up to n characters from stream, waiting at most `seconds` (a reader thread: no hang)."""
    got = []

    def reader():
        while len(got) < n:
            c = stream.read(1)
            if not c:
                return
            got.append(c)

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    t.join(seconds)
    return "".join(got)


def events(out_dir) -> list:
    with open(os.path.join(out_dir, "log.jsonl")) as f:
        return [json.loads(line) for line in f]


def no_traceback(err: str) -> None:
    assert "Traceback" not in err and "Exception ignored" not in err, err
