"""Issue 22, training side: a user's files in --out, ranks that disagree on MPI, an unwritable stdout/stderr,
flags against a [model] table, a hand-edited step, a second MPI run on a directory in use, blank data, an
empty backend selection; and the friction items (step records in log.jsonl, elapsed/ETA off a terminal,
what --lines chose, library-readable messages, the run.toml of docs/training.md)."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys

import pytest

from cliproc import ROOT, TINY
from tinyllm import TrainConfig, Trainer
from tinyllm.cli import EXIT_BAD_INPUT, main
from tinyllm.errors import ConfigError
from tinyllm.train import load_checkpoint
from tinyllm.train.checkpoint import INDEX
from tinyllm.train.config import load_toml
from tinyllm.train.lock import RunLock

README = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
TRAINING = open(os.path.join(ROOT, "docs", "training.md"), encoding="utf-8").read()  # run.toml, resuming
SHORT = ["--steps", "3", "--eval-interval", "3"]


def error_line(capsys, code) -> str:
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def train(out, *args) -> int:
    return main(["train", *TINY, "--out", str(out), *args])


# -- 2: a user's log.jsonl / loss.png in --out is not a run's ----------------------------------------------------

@pytest.mark.parametrize("name", ["log.jsonl", "loss.png"])
@pytest.mark.parametrize("overwrite", [True, False])
def test_a_users_log_or_plot_is_refused_not_replaced(tmp_path, capsys, name, overwrite):
    out = tmp_path / "run"
    out.mkdir()
    mine = b'{"my": "own notes"}\n' if name == "log.jsonl" else b"\x89PNG\r\n\x1a\n my own picture"
    (out / name).write_bytes(mine)
    line = error_line(capsys, train(out, *SHORT, *(["--overwrite"] if overwrite else [])))
    assert name in line and "not written by a tinyllm run" in line and "--overwrite" not in line, line
    assert (out / name).read_bytes() == mine and sorted(os.listdir(out)) == [name]


def test_overwrite_still_replaces_a_runs_own_log_and_plot(tmp_path, capsys):
    out = tmp_path / "run"
    assert train(out, *SHORT) == 0
    first = json.loads((out / "log.jsonl").read_text().splitlines()[0])
    assert first["event"] == "start" and re.fullmatch(r"[0-9a-f]{8}", first["run_id"])
    os.remove(out / INDEX)  # a run killed before its first checkpoint: its log and plot carry its id
    assert train(out, *SHORT, "--overwrite") == 0
    again = json.loads((out / "log.jsonl").read_text().splitlines()[0])
    assert again["run_id"] != first["run_id"]


# -- 4: TINYLLM_DIST=none on one rank only -------------------------------------------------------------------------

MPIEXEC = shutil.which("mpiexec")
try:
    import mpi4py  # noqa: F401
    HAVE_MPI4PY = True
except ImportError:
    HAVE_MPI4PY = False
needs_mpi = pytest.mark.skipif(MPIEXEC is None or not HAVE_MPI4PY, reason="needs mpiexec and mpi4py")
MPI_FLAGS = ["--allow-run-as-root", "--oversubscribe"]


def _mpi_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "PMI_", "PMIX_", "TINYLLM_DIST"))}
    return {**env, "PYTHONPATH": ROOT, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


def _mpirun(cmd, timeout=90):
    p = subprocess.Popen(cmd, env=_mpi_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        raise AssertionError(f"hung for {timeout} s: {' '.join(cmd)}") from None
    return p.returncode, out, err


@needs_mpi
def test_dist_none_on_one_rank_only_stops_every_rank(tmp_path):
    tiny = [sys.executable, "-m", "tinyllm", "train", *TINY, "--steps", "4", "--out", str(tmp_path / "o")]
    cmd = [MPIEXEC, *MPI_FLAGS, "-n", "1", *tiny, ":", "-n", "1", "env", "TINYLLM_DIST=none", *tiny]
    code, out, err = _mpirun(cmd)
    assert code == EXIT_BAD_INPUT, err
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 2 and all("TINYLLM_DIST" in ln and "rank 1" in ln for ln in lines), err
    assert "Traceback" not in err and not (tmp_path / "o").exists()


@needs_mpi
def test_dist_none_on_every_rank_is_one_process_each(tmp_path):
    """Every rank agreeing on none: each trains alone (here in its own --out, named by its rank)."""
    script = ("import os, sys; from tinyllm.cli import main; out = sys.argv.pop(); "
              "sys.exit(main(sys.argv[1:] + ['--out', out + os.environ['OMPI_COMM_WORLD_RANK']]))")
    cmd = [MPIEXEC, *MPI_FLAGS, "-n", "2", "env", "TINYLLM_DIST=none", sys.executable, "-c", script, "train",
           *TINY, "--steps", "2", str(tmp_path / "o")]
    code, out, err = _mpirun(cmd)
    assert code == 0, err
    assert [load_checkpoint(str(tmp_path / f"o{r}"))[1]["step"] for r in (0, 1)] == [2, 2]
    assert "MPI ranks" not in out


# -- 16: a second MPI run on a directory in use ----------------------------------------------------------------------

@needs_mpi
def test_mpi_resume_on_a_directory_in_use_says_so_on_every_rank(tmp_path):
    out = tmp_path / "run"
    assert train(out, "--steps", "2", "--eval-interval", "1") == 0
    with RunLock(str(out)):  # a live run holds it
        cmd = [MPIEXEC, *MPI_FLAGS, "-n", "2", sys.executable, "-m", "tinyllm", "train", *TINY, "--resume",
               "--steps", "4", "--out", str(out)]
        code, _, err = _mpirun(cmd)
    assert code == EXIT_BAD_INPUT, err
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 2 and all("is in use by another run" in ln for ln in lines), err
    assert "does not match" not in err and load_checkpoint(str(out))[1]["step"] == 2


# -- 5: stdout / stderr that cannot be written -----------------------------------------------------------------------

needs_dev_full = pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")


def _run_redirected(args, stdout=None, stderr=None, timeout=120):
    env = {**os.environ, "PYTHONPATH": ROOT}
    p = subprocess.run([sys.executable, "-m", "tinyllm", "train", *TINY, *args], env=env, timeout=timeout,
                       stdout=stdout or subprocess.PIPE, stderr=stderr or subprocess.PIPE)
    decode = (lambda b: b.decode() if b else "")
    return p.returncode, decode(p.stdout), decode(p.stderr)


@needs_dev_full
def test_stdout_that_cannot_be_written_trains_on_and_saves(tmp_path):
    out = tmp_path / "run"
    with open("/dev/full", "w") as full:
        code, _, err = _run_redirected(["--steps", "4", "--eval-interval", "2", "--out", str(out)], stdout=full)
    assert code == 0, err
    assert "Traceback" not in err and err.count("\n") == 1 and "stdout cannot be written" in err, err
    assert load_checkpoint(str(out))[1]["step"] == 4
    events = [json.loads(ln)["event"] for ln in open(out / "log.jsonl")]
    assert events[0] == "start" and events[-1] == "end"


@needs_dev_full
def test_stderr_that_cannot_be_written_trains_on_and_says_so_on_stdout(tmp_path):
    """A warning (resuming on other data) that cannot reach stderr: said once on stdout, training goes on."""
    text = "".join(chr(97 + (i * 7919) % 26) + (" " if i % 5 == 4 else "") for i in range(3000))
    (tmp_path / "a.txt").write_text(text)
    (tmp_path / "b.txt").write_text(text[::-1])  # same characters, other text: a warning on resume
    out = tmp_path / "run"
    assert train(out, "--data", str(tmp_path / "a.txt"), "--steps", "2", "--eval-interval", "1") == 0
    with open("/dev/full", "w") as full:
        code, stdout, _ = _run_redirected(["--resume", "--out", str(out), "--data", str(tmp_path / "b.txt"),
                                           "--steps", "4"], stderr=full)
    assert code == 0, stdout
    assert stdout.count("stderr cannot be written") == 1, stdout
    assert load_checkpoint(str(out))[1]["step"] == 4


@needs_dev_full
def test_the_cuda_fallback_warning_and_the_closing_error_line_survive_a_full_stderr(tmp_path):
    """The two lines written before or after a run's own log: the fallback to the CPU (trains on) and a
    refusal's one line (its exit code still says it); neither becomes an OSError traceback."""
    env = {k: v for k, v in os.environ.items() if k != "TINYLLM_CUDA_SIM"}
    with open("/dev/full", "w") as full:
        p = subprocess.run([sys.executable, "-m", "tinyllm", "train", *TINY, "--steps", "2", "--device", "cuda",
                            "--out", str(tmp_path / "run")], env={**env, "PYTHONPATH": ROOT}, stderr=full,
                           stdout=subprocess.PIPE, timeout=120, text=True)
        assert p.returncode == 0 and p.stdout.startswith("device cpu"), p.stdout
        p = subprocess.run([sys.executable, "-m", "tinyllm", "sample", "--out", str(tmp_path / "none")],
                           env={**env, "PYTHONPATH": ROOT}, stderr=full, stdout=subprocess.PIPE, timeout=120)
        assert p.returncode == EXIT_BAD_INPUT


# -- 8: flags beat the file; one setting twice in a file is refused -----------------------------------------------

def test_flags_beat_the_model_table_and_the_top_level(tmp_path):
    conf = tmp_path / "t.toml"
    conf.write_text('steps = 2\neval-interval = 2\nbatch-size = 4\nlr = 0.01\nsamples = 0\neval-iters = 1\n'
                    'device = "cpu"\n[model]\nname = "gpt"\nn_layer = 1\nn_head = 2\nn_embd = 8\nblock_size = 8\n')
    out = str(tmp_path / "run")
    assert main(["train", "--config", str(conf), "--out", out, "--block-size", "16", "--n-embd", "16",
                 "--lr", "0.02"]) == 0
    meta = load_checkpoint(out)[1]
    assert meta["config"]["block_size"] == 16 and meta["config"]["n_embd"] == 16 and meta["train"]["lr"] == 0.02
    assert meta["config"]["n_layer"] == 1  # the table's other settings still apply


@pytest.mark.parametrize("body, names", [
    ("batch-size = 4\nbatch_size = 8\n", ("batch-size", "batch_size")),
    ("n-embd = 16\n[model]\nn_embd = 8\n", ("n-embd", "[model] n_embd")),
    ("[model]\nn-head = 2\nn_head = 4\n", ("[model] n-head", "[model] n_head")),
])
def test_one_setting_twice_in_a_config_file_is_refused(tmp_path, capsys, body, names):
    conf = tmp_path / "t.toml"
    conf.write_text(body)
    with pytest.raises(ConfigError) as e:
        load_toml(str(conf))
    assert all(n in str(e.value) for n in names), e.value
    line = error_line(capsys, main(["train", "--config", str(conf), "--out", str(tmp_path / "o")]))
    assert "twice" in line and not (tmp_path / "o").exists()


# -- 9: a hand-edited step ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("edited", [3, 5])
def test_a_hand_edited_step_is_refused_on_resume(tmp_path, capsys, edited):
    out = tmp_path / "run"
    assert train(out, "--steps", "4", "--eval-interval", "2") == 0
    path = out / INDEX
    index = json.loads(path.read_text())
    assert index["meta"]["step"] == index["meta"]["optim"]["step_count"] == 4
    index["meta"]["step"] = edited
    path.write_text(json.dumps(index))
    before = path.read_bytes()
    line = error_line(capsys, train(out, "--resume", "--steps", "8"))
    assert f"step {edited}" in line and "step_count 4" in line, line
    assert path.read_bytes() == before


# -- 17: blank data; an empty backend selection ----------------------------------------------------------------------

def test_a_file_of_blank_lines_is_called_what_it_is(tmp_path, capsys):
    data = tmp_path / "blank.txt"
    data.write_bytes(b"   \n\n \t \n  \n")
    line = error_line(capsys, train(tmp_path / "o", "--data", str(data), "--lines"))
    assert "no non-blank line" in line and "is empty" not in line, line
    (tmp_path / "one.txt").write_text("   \nhello\n\n   \n")
    line = error_line(capsys, train(tmp_path / "o", "--data", str(tmp_path / "one.txt"), "--lines"))
    assert "has 1 non-blank line;" in line, line


@pytest.mark.parametrize("selection", ["", " , ", "gpu", "cpu,nope"])
def test_an_empty_or_unknown_backend_selection_is_a_usage_error(selection):
    env = {**os.environ, "TINYLLM_BACKENDS": selection}
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "--co", "-p", "no:cacheprovider",
                        os.path.join(ROOT, "tests", "test_layering.py")], env=env, cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 4, p.stdout + p.stderr  # pytest's usage error
    said = p.stdout + p.stderr
    assert "TINYLLM_BACKENDS" in said and "cpu" in said and "strict" in said and "cuda" in said, said


# -- friction --------------------------------------------------------------------------------------------------------

def test_docs_run_toml_writes_where_no_earlier_example_did():
    toml = re.search(r"```toml\n(.*?)```", TRAINING, re.S)
    out = re.search(r'^out = "([^"]+)"', toml.group(1), re.M).group(1)
    before = README + TRAINING[:toml.start()]  # a reader comes from the README's examples to this page
    assert f"--out {out}" not in before and f"--out {out}\n" not in before


def test_log_jsonl_has_a_record_per_logged_step(tmp_path):
    out = tmp_path / "run"
    assert train(out, "--steps", "6", "--eval-interval", "3", "--log-interval", "2") == 0
    recs = [json.loads(ln) for ln in open(out / "log.jsonl")]
    steps = [r for r in recs if r["event"] == "step"]
    assert [r["step"] for r in steps] == [2, 3, 4, 6]  # every log interval, and where an evaluation read
    meta = load_checkpoint(str(out))[1]
    for r in steps:
        assert set(r) >= {"step", "loss", "lr", "grad_norm", "tok_per_s", "elapsed"}
        assert r["loss"] == meta["losses"][r["step"] - 1] and r["grad_norm"] > 0 and r["elapsed"] >= 0


def test_log_lines_off_a_terminal_have_elapsed_and_eta(tmp_path, capsys):
    assert train(tmp_path / "run", "--steps", "4", "--eval-interval", "2") == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("step ")]
    assert "elapsed" not in lines[0]  # step 0: nothing timed yet
    assert all(re.search(r"\| elapsed \d+s \| eta \d+s$", ln) for ln in lines[1:]) and len(lines) == 3, lines


def test_docs_say_a_larger_steps_at_resume_stretches_the_schedule():
    assert "docs/training.md" in README and "tinyllm train --resume --out out" in README
    resume = TRAINING[TRAINING.index("tinyllm train --resume --out out"):]
    assert re.search(r"larger `--steps`.{0,200}schedule.{0,100}new total", resume[:3000], re.S)


def test_library_messages_name_the_setting_not_only_the_flag(tmp_path):
    kw = dict(n_layer=1, n_head=2, n_embd=16, block_size=8, batch_size=4, steps=2, eval_interval=2, eval_iters=1,
              samples=0, device="cpu", out=str(tmp_path / "run"))
    Trainer(TrainConfig(**kw), verbose=False).fit()
    with pytest.raises(ConfigError, match=r"steps \(--steps\)") as e:
        Trainer(TrainConfig(**kw, resume=True), verbose=False)
    assert "pass a larger --steps" not in str(e.value)
    with pytest.raises(ConfigError, match=r"min_lr \(--min-lr\)"):
        TrainConfig(lr=1e-3, min_lr=1e-2).validate()


@pytest.mark.parametrize("flag, said", [(None, "one example a line, guessed"), ("--lines", "one example a line"),
                                        ("--no-lines", "one text")])
def test_lines_choice_is_stored_and_said_first(tmp_path, capsys, flag, said):
    data = tmp_path / "words.txt"
    data.write_text("\n".join(f"w{i % 37}x{i % 11}" for i in range(400)) + "\n")
    out = tmp_path / "run"
    assert train(out, "--data", str(data), *SHORT, *([flag] if flag else [])) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert said in first, first
    if flag is None:
        assert "--no-lines" in first
    else:
        assert "guessed" not in first
    assert load_checkpoint(str(out))[1]["train"]["lines"] is (flag != "--no-lines")
