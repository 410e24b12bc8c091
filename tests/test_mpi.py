"""Data-parallel training under a real `mpiexec` (Open MPI from the `mpi` extra): the same result at any
number of ranks, rank 0 alone writes, settings checked across ranks, faults (a rank killed, SIGTERM to
mpiexec, no mpi4py)."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from cliproc import ROOT, TINY
from tinyllm.train.checkpoint import CheckpointError, load_checkpoint

MPIEXEC = shutil.which("mpiexec")
try:
    import mpi4py  # noqa: F401
    HAVE_MPI4PY = True
except ImportError:
    HAVE_MPI4PY = False
needs_mpi = pytest.mark.skipif(MPIEXEC is None or not HAVE_MPI4PY,
                               reason="needs mpiexec and mpi4py: pip install -e '.[mpi]'")
# root in a container, and more ranks than cores when the machine is small
MPI_FLAGS = ["--allow-run-as-root", "--oversubscribe"]
STEPS = ["--steps", "12", "--eval-interval", "6", "--log-interval", "3", "--dropout", "0.1", "--batch-size", "6"]
RTOL_LOSS, ATOL_WEIGHT = 1e-5, 1e-5  # float32 sums in another order; AdamW divides tiny gradients by their size


def _env():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "PMI_", "PMIX_"))}
    return {**env, "PYTHONPATH": ROOT, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


def _cmd(ranks: int, *args) -> list:
    tinyllm = [sys.executable, "-m", "tinyllm", "train", *TINY, *args]
    return [MPIEXEC, *MPI_FLAGS, "-n", str(ranks), *tinyllm] if ranks else tinyllm


def run(ranks: int, *args, timeout=180):
    """ranks = 0: a plain process, no mpiexec."""
    p = subprocess.run(_cmd(ranks, *args), env=_env(), capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def start(ranks: int, *args):
    return subprocess.Popen(_cmd(ranks, *args), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def checkpoint(out):
    tensors, meta = load_checkpoint(str(out))
    return {k: v for k, v in tensors.items() if k.startswith("model.")}, meta


def same_run(a, b):
    (wa, ma), (wb, mb) = checkpoint(a), checkpoint(b)
    assert ma["step"] == mb["step"]
    assert len(ma["losses"]) == len(mb["losses"]) > 0
    for x, y in zip(ma["losses"], mb["losses"]):
        assert x == pytest.approx(y, rel=RTOL_LOSS)
    for k in wa:
        assert abs(wa[k] - wb[k]).max() <= ATOL_WEIGHT, k


@needs_mpi
def test_two_ranks_train_as_one_process(tmp_path):
    """2 ranks x half of each batch == 1 process x the batch (dropout on): losses to rtol 1e-5, weights to atol
    1e-5; rank 0 alone writes: one log, one checkpoint, one console."""
    code, out1, err1 = run(0, *STEPS, "--out", str(tmp_path / "one"))
    assert code == 0, err1
    code, out2, err2 = run(2, *STEPS, "--out", str(tmp_path / "two"))
    assert code == 0, err2
    same_run(tmp_path / "one", tmp_path / "two")
    assert out2.count("saved in ") == 1 and out2.count("step 12/12") == 1  # one console
    events = [json.loads(line)["event"] for line in open(tmp_path / "two" / "log.jsonl")]
    assert events.count("start") == 1 and events.count("end") == 1  # one writer
    assert len([f for f in os.listdir(tmp_path / "two") if f.endswith(".safetensors")]) == 1


PROBE = """
import json, sys
from tinyllm import Trainer
from tinyllm.nn import Dropout
t = Trainer(data="names", steps=2, batch_size=6, dropout=0.5, n_layer=1, n_head=2, n_embd=16, block_size=8,
            device="cpu", out=sys.argv[1], verbose=False)
dp, B = t.parallel, 6
d = [m for m in t.model.modules() if isinstance(m, Dropout)][0]
d.stream.counter = 3
dp.shard_dropout([d], B)
x, _ = t.train_batches.batch(B, t.rng, dp.rows(B))
mask = d.stream.keep_mask(t.backend, (x.shape[0], 8, 16), 0.5)
print(json.dumps({"rank": t.world.rank, "size": t.world.size, "x": t.backend.to_host(x).tolist(),
                  "mask": t.backend.to_host(mask).tolist()}))
"""


@needs_mpi
def test_ranks_read_distinct_rows_and_draw_distinct_masks(tmp_path):
    """Each rank's rows of a batch, and its dropout masks, are its own slice of the one-process batch's."""
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    outs = {}
    for ranks in (0, 2):
        cmd = [sys.executable, str(script), str(tmp_path / f"o{ranks}")]
        if ranks:
            cmd = [MPIEXEC, *MPI_FLAGS, "-n", str(ranks), *cmd]
        p = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        outs[ranks] = sorted((json.loads(line) for line in p.stdout.splitlines()), key=lambda r: r["rank"])
    whole, (r0, r1) = outs[0][0], outs[2]
    assert (r0["size"], r1["size"]) == (2, 2) and len(r0["x"]) == len(r1["x"]) == 3
    assert r0["x"] != r1["x"] and r0["x"] + r1["x"] == whole["x"]  # distinct rows, together the batch
    assert r0["mask"] != r1["mask"] and r0["mask"] + r1["mask"] == whole["mask"]  # distinct masks, the batch's


@needs_mpi
@pytest.mark.slow
def test_resume_with_another_number_of_ranks_continues_the_run(tmp_path):
    """2 ranks to step 12, then 1 process (and 3 ranks) to 18 == 1 process all along."""
    more = [a if a != "12" else "18" for a in STEPS]
    for ranks, out in ((0, "a"), (2, "b"), (2, "c")):
        assert run(ranks, *STEPS, "--out", str(tmp_path / out))[0] == 0
    assert run(0, *more, "--resume", "--out", str(tmp_path / "a"))[0] == 0
    assert run(0, *more, "--resume", "--out", str(tmp_path / "b"))[0] == 0
    code, _, err = run(3, *more, "--resume", "--out", str(tmp_path / "c"))
    assert code == 0, err
    same_run(tmp_path / "a", tmp_path / "b")
    same_run(tmp_path / "a", tmp_path / "c")


@needs_mpi
def test_settings_that_differ_between_ranks_stop_every_rank(tmp_path):
    tiny = [sys.executable, "-m", "tinyllm", "train", *TINY, "--steps", "5", "--out", str(tmp_path / "o")]
    cmd = [MPIEXEC, *MPI_FLAGS, "-n", "1", *tiny, "--lr", "1e-3", ":", "-n", "1", *tiny, "--lr", "2e-3"]
    p = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("error:")]
    assert lines == ["error: rank 1 does not match rank 0: lr=0.002 (rank 0: 0.001); start every rank with the "
                     "same flags, files and tinyllm"] * 2, p.stderr
    assert "Traceback" not in p.stderr and not (tmp_path / "o").exists()


def test_missing_mpi4py_under_mpiexec_is_one_line(tmp_path):
    """What mpiexec sets, with mpi4py not importable: one line naming what to install, exit 2."""
    code = ("import sys; sys.modules['mpi4py'] = None; from tinyllm.cli import main; "
            f"sys.exit(main(['train', '--steps', '2', '--out', {str(tmp_path / 'o')!r}]))")
    env = {**_env(), "OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_RANK": "0"}
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    assert p.stderr.count("\n") == 1 and p.stderr.startswith("error: started by an MPI launcher"), p.stderr
    assert "pip install 'tinyllm[mpi]'" in p.stderr and not (tmp_path / "o").exists()


def _wait_for(pred, seconds: float, what: str):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"no {what} within {seconds} s")


def _step(out) -> int:
    """The step of the checkpoint in out, -1 while a writer is replacing it."""
    try:
        return checkpoint(out)[1]["step"]
    except CheckpointError:
        return -1


def _rank_pid(p, rank: int) -> int:
    """The pid of a rank of the job mpiexec p runs (found by its environment)."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            env = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
            if f"OMPI_COMM_WORLD_RANK={rank}".encode() in env and os.getsid(int(pid)) == p.pid:
                return int(pid)
        except OSError:
            continue
    raise AssertionError(f"rank {rank} not found")


LONG = ["--steps", "100000", "--eval-interval", "20", "--log-interval", "5", "--batch-size", "4"]


@needs_mpi
@pytest.mark.parametrize("fault", ["SIGKILL a rank", "SIGTERM to mpiexec", "SIGINT to mpiexec", "SIGTERM to rank 1"])
def test_faults_stop_every_rank_promptly_and_resume_goes_on(tmp_path, fault):
    """A rank killed: the other stops within seconds (no hang), Open MPI says which; SIGTERM or Ctrl-C
    (SIGINT) to mpiexec (Open MPI forwards SIGTERM, then SIGKILLs ~0.25 s later): rank 0 has saved the last
    whole step. Every way the checkpoint is whole and --resume goes on."""
    out = tmp_path / "o"
    p = start(2, *LONG, "--out", str(out))
    try:
        _wait_for(lambda: (out / "checkpoint.json").exists(), 60, "first checkpoint")
        first = checkpoint(out)[1]["step"]
        _wait_for(lambda: len(open(out / "log.jsonl").readlines()) >= 3, 60, "second evaluation")
        t0 = time.monotonic()
        if fault == "SIGKILL a rank":
            os.kill(_rank_pid(p, 1), signal.SIGKILL)
        elif fault == "SIGTERM to rank 1":  # travels in the next Allreduce: both stop after that step
            os.kill(_rank_pid(p, 1), signal.SIGTERM)
        else:
            p.send_signal(signal.SIGTERM if fault.startswith("SIGTERM") else signal.SIGINT)
        _, err = p.communicate(timeout=20)
        took = time.monotonic() - t0
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    assert p.returncode != 0 and took < 10, (p.returncode, took)
    if fault == "SIGKILL a rank":  # Open MPI's line; then it SIGTERMs rank 0, which saves if it gets the time
        assert "prterun noticed that process rank 1" in err and "signal 9" in err, err
    if fault == "SIGTERM to rank 1":
        stops = [ln for ln in err.splitlines() if ln.startswith("stopped by SIGTERM at step ")]
        assert p.returncode == 143 and len(stops) == 2 and stops[0] == stops[1], err
        assert f"at step {checkpoint(out)[1]['step']}/" in stops[0]
    # rank 0's writer finishes on its own: the newest checkpoint is a whole step past the first one
    _wait_for(lambda: _step(out) > first or (fault == "SIGKILL a rank" and _step(out) == first), 10,
              "checkpoint of the stop")
    step = checkpoint(out)[1]["step"]
    code, stdout, err = run(2, *[a if a != "100000" else str(step + 3) for a in LONG], "--resume", "--out", str(out))
    assert code == 0, err
    assert f"resuming from step {step}/" in stdout and checkpoint(out)[1]["step"] == step + 3


@needs_mpi
@pytest.mark.slow
def test_bench_mpi_reports_every_configuration():
    """scripts/bench/bench_mpi.py at tiny sizes: each configuration ran and the ratios are there (speed is reported,
    never asserted)."""
    bench = os.path.join(ROOT, "scripts", "bench", "bench_mpi.py")
    p = subprocess.run([sys.executable, bench, "--json", "--rounds", "1", "--steps", "2", "--warmup", "1",
                        "--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--block", "8", "--batch", "4"],
                       env=_env(), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    rep = json.loads(p.stdout)
    assert set(rep["median_tok_per_s"]) >= {"A", "B", "C"} and all(v > 0 for v in rep["median_tok_per_s"].values())
    assert {"B/A", "scaling_efficiency B/(2C)"} <= set(rep["ratios"]) and rep["machine"]["blas"]


STAGING = """
import json, sys
from tinyllm import Trainer
from tinyllm.distributed.stop import RankGuard
t = Trainer(data="names", steps=4, batch_size=6, dropout=0.1, n_layer=1, n_head=2, n_embd=16, block_size=8,
            device=sys.argv[2], out=sys.argv[1], verbose=False)
dp, be = t.parallel, t.backend
dp.stop_guard = guard = RankGuard(dp, t)  # not entered (no handlers): .local is set below, as a signal would
world_sum, calls, steps, kept = t.world.allreduce_sum, [], [], []

def counting(buf):
    world_sum(buf)
    kept.append(buf)  # alive, so that two buffers never share an id
    calls.append({"step": t.step, "n": int(buf.shape[0]), "buffer": id(buf), "flag": float(buf[-1])})

t.world.allreduce_sum = counting
for k in range(4):
    guard.local = guard.local or (k == 1 and t.world.rank == 1)  # a signal that reached rank 1 alone
    before = be.stats.copy()
    t.train_step()
    flag = getattr(dp, "last_flag", None)
    kept.append(flag)
    steps.append({"requested": guard.requested, "signum": int(guard.signum), "d2h": (be.stats - before).d2h_calls,
                  "flag_buffer": id(flag) if flag is not None else None})
print(json.dumps({"rank": t.world.rank, "n": t.optimizer.flat.total, "aware": dp.device_buffers, "calls": calls,
                  "steps": steps}))
"""


def _staging(tmp_path, device, **env):
    script = tmp_path / "staging.py"
    script.write_text(STAGING)
    cmd = [MPIEXEC, *MPI_FLAGS, "-n", "2", sys.executable, str(script), str(tmp_path / "out"), device]
    p = subprocess.run(cmd, env={**_env(), **env}, capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stderr[-3000:]
    return sorted((json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")), key=lambda r: r["rank"])


@needs_mpi
@pytest.mark.parametrize("device", ["cpu", "strict:1"])
def test_one_allreduce_a_step_carries_the_stop_flag_through_one_reused_buffer(tmp_path, device):
    """Gradients, loss and stop flag in one Allreduce a step, staged through one host buffer made once (pinned
    on a GPU); the flag is read there (no read of its own), and a signal on rank 1 alone stops both ranks
    after the same step."""
    for r in _staging(tmp_path, device):
        assert not r["aware"] and [c["step"] for c in r["calls"]] == [0, 1, 2, 3]  # one Allreduce a step
        assert {c["n"] for c in r["calls"]} == {r["n"] + 2}  # the gradients, the loss and the flag
        assert len({c["buffer"] for c in r["calls"]}) == 1  # one host buffer, reused
        assert [c["flag"] for c in r["calls"]] == [0.0, 1.0, 1.0, 1.0]  # summed: rank 1's signal, on both ranks
        assert [s["requested"] for s in r["steps"]] == [False, True, True, True]
        assert r["steps"][1]["signum"] == (15 if r["rank"] == 0 else 2)  # rank 0 stops as told (SIGTERM)
        assert [s["d2h"] for s in r["steps"]] == [1, 1, 1, 1]  # the staging copy only: no read for the flag


@needs_mpi
def test_an_mpi_that_takes_device_buffers_reads_the_flag_a_step_later(tmp_path):
    """A CUDA-aware MPI (the simulated CuPy) gets the device buffer itself; the flag is queued into one host
    buffer and read after the next step's wait, so both ranks stop one step later, together."""
    for r in _staging(tmp_path, "cuda", TINYLLM_CUDA_SIM="1", TINYLLM_CUDA_AWARE_MPI="1"):
        assert r["aware"] and [c["step"] for c in r["calls"]] == [0, 1, 2, 3]
        assert [c["flag"] for c in r["calls"]] == [0.0, 1.0, 1.0, 1.0]
        assert [s["requested"] for s in r["steps"]] == [False, False, True, True]  # seen at the next step
        assert len({s["flag_buffer"] for s in r["steps"]}) == 1 and r["steps"][0]["flag_buffer"]  # one, reused
