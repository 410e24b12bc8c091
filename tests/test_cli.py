"""`tinyllm train | sample | gradcheck` end to end, and every bad input: one line, exit 2, no traceback."""
import hashlib
import os
import subprocess
import sys

import pytest

from tinyllm.cli import EXIT_BAD_INPUT, EXIT_FAILED, main
from tinyllm.train import load_checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "8", "--batch-size", "4",
        "--steps", "6", "--eval-interval", "3", "--eval-iters", "1", "--samples", "2", "--device", "cpu"]


def snapshot(d) -> dict:
    return {f: hashlib.sha256(open(os.path.join(d, f), "rb").read()).hexdigest()
            for f in sorted(os.listdir(d)) if os.path.isfile(os.path.join(d, f))}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny run on the names, shared by the tests that only read it."""
    out = str(tmp_path_factory.mktemp("cli") / "run")
    assert main(["train", *TINY, "--out", out]) == 0
    return out


def one_error_line(capsys, code_got, code=EXIT_BAD_INPUT) -> str:
    cap = capsys.readouterr()
    assert code_got == code, cap.err
    lines = [l for l in cap.err.splitlines() if l.strip() and not l.startswith("warning:")]
    assert len(lines) == 1 and lines[0].startswith("error: "), cap.err
    assert "Traceback" not in cap.err
    return lines[0]


def test_train_then_sample(trained, capsys):
    assert {"checkpoint.json", "log.jsonl", "loss.png"} <= set(os.listdir(trained))
    assert load_checkpoint(trained)[1]["step"] == 6
    assert main(["sample", "--out", trained, "--num-samples", "4", "--temperature", "0.8", "--top-k", "5",
                 "--device", "cpu"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 4 and all(set(s) <= set("abcdefghijklmnopqrstuvwxyz") for s in out)
    assert main(["sample", "--out", trained, "--num-samples", "3", "--prompt", "em", "--top-p", "0.9",
                 "--device", "strict"]) == 0  # trained on cpu, sampled on strict
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3 and all(s.startswith("em") for s in out)
    assert main(["sample", "--out", trained, "--num-samples", "2", "--temperature", "0"]) == 0
    a, b = capsys.readouterr().out.splitlines()
    assert a == b  # greedy


def test_train_prints_device_progress_and_samples(tmp_path, capsys):
    assert main(["train", *TINY, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("device cpu (NumPy")
    assert out[1].startswith("step 0/6 | loss ")
    assert out[-4] == "samples (temperature 1.0):" and len(out[-3:-1]) == 2
    # the closing line says where the run was saved and how to use it
    assert out[-1] == (f"saved in {tmp_path}/ (step 6: checkpoint.json, log.jsonl, loss.png); "
                       f"sample with: tinyllm sample --out {tmp_path}")


def test_resume_takes_the_checkpoints_settings(tmp_path, capsys):
    out = str(tmp_path)
    assert main(["train", *TINY, "--lr", "0.004", "--schedule", "linear", "--out", out]) == 0
    # no size flags: they come from the checkpoint; only --steps changes
    assert main(["train", "--resume", "--out", out, "--steps", "9", "--device", "cpu"]) == 0
    meta = load_checkpoint(out)[1]
    assert meta["step"] == 9 and meta["train"]["lr"] == 0.004 and meta["config"]["n_embd"] == 16
    assert meta["train"]["schedule"] == "linear" and meta["train"]["batch_size"] == 4
    assert "resuming from step 6/9" in capsys.readouterr().out
    # a flag given wins, even at its default value; the same rule as TrainConfig(resume=True) (test_train.py)
    assert main(["train", "--resume", "--out", out, "--steps", "10", "--device", "cpu", "--batch-size", "32"]) == 0
    assert load_checkpoint(out)[1]["train"]["batch_size"] == 32


def test_toml_config_and_flags_override(tmp_path):
    conf = tmp_path / "run.toml"
    conf.write_text('steps = 4\neval-interval = 2\nbatch_size = 4\neval_iters = 1\nsamples = 0\ndevice = "cpu"\n'
                    'lr = 0.01\n[model]\nname = "gpt"\nn_layer = 1\nn_head = 2\nn_embd = 8\nblock_size = 8\n')
    out = str(tmp_path / "run")
    assert main(["train", "--config", str(conf), "--out", out, "--lr", "0.02"]) == 0
    meta = load_checkpoint(out)[1]
    assert meta["step"] == 4 and meta["config"]["n_embd"] == 8 and meta["train"]["lr"] == 0.02


def test_gradcheck_command(capsys):
    assert main(["gradcheck", "--op", "gelu", "--op", "cross_entropy"]) == 0
    out = capsys.readouterr().out
    assert "analytic" in out and "numeric" in out and "gelu" in out and "cross_entropy-3d" in out
    assert "4/4 cases ok; worst error" in out


@pytest.mark.parametrize("device", ["cpu", "strict"])
def test_gradcheck_runs_every_case(device, capsys):
    from tinyllm.ops.checks import CASES

    assert main(["gradcheck", "--device", device]) == 0
    out = capsys.readouterr().out
    assert f"{len(CASES)}/{len(CASES)} cases ok" in out and "FAIL" not in out


def test_gradcheck_op_takes_every_case_of_that_op_only(capsys):
    assert main(["gradcheck", "--op", "matmul"]) == 0
    out = capsys.readouterr().out
    assert "matmul-2d" in out and "matmul-bcast-left" in out and "softmax" not in out and "4/4 cases ok" in out


def test_gradcheck_unknown_op_is_one_line_and_exit_2(capsys):
    line = one_error_line(capsys, main(["gradcheck", "--op", "nosuchop"]))
    assert "no gradient check for op(s) nosuchop" in line and "known ops: add" in line


# -- bad input: one clear line on stderr, exit code 2, no traceback, nothing written -----------------------

def _file(tmp_path, content):
    p = tmp_path / "data.txt"
    if content is not None:
        p.write_bytes(content)
    return str(p)


@pytest.mark.parametrize("make_args, expect", [
    (lambda d: ["--data", _file(d, None)], "does not exist"),
    (lambda d: ["--data", _file(d, b"")], "is empty"),
    (lambda d: ["--data", _file(d, b"abcdefghij")], "too short for block_size 8"),  # 10 chars: val split 1 token
    (lambda d: ["--data", _file(d, b"caf\xe9 not utf8 " * 10)], "not valid UTF-8"),  # Latin-1
    (lambda d: ["--steps", "0"], "steps (--steps) must be a positive integer, got 0"),
    (lambda d: ["--n-layer", "-1"], "n_layer"),
    (lambda d: ["--block-size", "0"], "block_size"),
    (lambda d: ["--batch-size", "0"], "batch_size"),
    (lambda d: ["--n-embd", "30", "--n-head", "4"], "divisible"),
    (lambda d: ["--device", "tpu"], "unknown device 'tpu'"),
    (lambda d: ["--config", str(d / "none.toml")], "config file"),
    (lambda d: ["--resume", "--out", str(d / "never-trained")], "cannot resume"),
])
def test_bad_train_input(tmp_path, capsys, make_args, expect):
    out = tmp_path / "run"
    args = ["train", *TINY, "--out", str(out), *make_args(tmp_path)]
    line = one_error_line(capsys, main(args))
    assert expect in line
    assert not out.exists() or not os.listdir(out)


@pytest.mark.parametrize("make_args, expect", [
    (lambda d, run: ["--resume", "--out", run, "--data", _file(d, b"the quick brown fox. " * 40), "--steps", "12"],
     "tokenizer"),
    (lambda d, run: ["--out", run, "--n-embd", "30", "--n-head", "4"], "divisible"),
    (lambda d, run: ["--out", run, "--steps", "-5"], "steps"),
    (lambda d, run: ["--resume", "--out", run, "--steps", "6"], "already at step 6"),
])
def test_bad_input_never_touches_an_existing_checkpoint(tmp_path, capsys, make_args, expect):
    run = str(tmp_path / "run")
    assert main(["train", *TINY, "--samples", "0", "--out", run]) == 0
    capsys.readouterr()
    before = snapshot(run)
    assert expect in one_error_line(capsys, main(["train", *TINY, *make_args(tmp_path, run)]))
    assert snapshot(run) == before


def test_incomplete_checkpoint(tmp_path, capsys):
    run = str(tmp_path / "run")
    assert main(["train", *TINY, "--samples", "0", "--out", run]) == 0
    for f in os.listdir(run):
        if f.endswith(".safetensors"):
            os.remove(os.path.join(run, f))
    capsys.readouterr()
    assert "missing" in one_error_line(capsys, main(["train", *TINY, "--resume", "--steps", "12", "--out", run]))
    assert "missing" in one_error_line(capsys, main(["sample", "--out", run]))


def test_bad_sample_input(trained, tmp_path, capsys):
    line = one_error_line(capsys, main(["sample", "--out", trained, "--prompt", "Zoë"]))
    assert "'Zë'" in line and "abcdefghijklmnopqrstuvwxyz" in line
    assert "train one first" in one_error_line(capsys, main(["sample", "--out", str(tmp_path / "none")]))
    assert "temperature" in one_error_line(capsys, main(["sample", "--out", trained, "--temperature", "-1"]))
    assert "unknown device" in one_error_line(capsys, main(["sample", "--out", trained, "--device", "gpu:x"]))


def test_nonfinite_exit_code_is_3(tmp_path, capsys):
    run = str(tmp_path / "run")
    line = one_error_line(capsys, main(["train", *TINY, "--lr", "1e30", "--grad-clip", "0", "--steps", "30",
                                        "--out", run]), code=EXIT_FAILED)
    assert "nan" in line or "inf" in line


def run_cli(*args, cwd):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", "tinyllm", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=120)


@pytest.mark.parametrize("args, expect", [
    (["train", "--data", "missing.txt"], "does not exist"),
    (["train", "--device", "tpu"], "unknown device"),
    (["sample", "--out", "nowhere"], "no checkpoint"),
])
def test_subprocess_bad_input_exit_2_without_traceback(tmp_path, args, expect):
    r = run_cli(*args, cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: ") and expect in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()


def test_subprocess_help_reads_well(tmp_path):
    r = run_cli("train", "--help", cwd=tmp_path)
    assert r.returncode == 0
    for flag in ("--data", "--model", "--n-layer", "--resume", "--skip-nonfinite", "--config", "--device", "examples:"):
        assert flag in r.stdout


def test_ctrl_c_saves_exits_130_and_resumes(tmp_path):
    """First SIGINT: the step finishes, a checkpoint is saved, exit 130; --resume then carries on."""
    import signal
    import time

    out = str(tmp_path / "run")
    args = TINY[:TINY.index("--steps")] + ["--steps", "100000"] + TINY[TINY.index("--steps") + 2:]
    env = dict(os.environ, PYTHONPATH=ROOT, PYTHONUNBUFFERED="1")
    p = subprocess.Popen([sys.executable, "-m", "tinyllm", "train", *args, "--eval-interval", "1000", "--out", out],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert p.stdout.readline().startswith("device cpu")
        assert p.stdout.readline().startswith("step 0/100000")  # the loop is running
        time.sleep(0.5)
        p.send_signal(signal.SIGINT)
        stdout, stderr = p.communicate(timeout=60)
    finally:
        p.kill()
    assert p.returncode == 130, stderr
    assert "Traceback" not in stderr and "--resume" in stderr
    step = load_checkpoint(out)[1]["step"]
    assert step > 0
    r = run_cli("train", "--resume", "--out", out, "--steps", str(step + 2), "--device", "cpu", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert load_checkpoint(out)[1]["step"] == step + 2


def test_train_leaves_the_warning_filters_as_they_were(tmp_path):
    """The CLI quiets the array library's overflow warnings for its run only, not for the whole process."""
    import warnings

    before = list(warnings.filters)
    assert main(["train", *TINY, "--steps", "2", "--out", str(tmp_path)]) == 0
    assert warnings.filters == before


def test_gptconfig_defaults_are_what_tinyllm_train_builds(tmp_path):
    """One source of sizes: GPTConfig() is the model `tinyllm train` builds with no flags (on the names)."""
    from tinyllm.cli import build_train_config, make_parser
    from tinyllm.models import GPTConfig
    from tinyllm.train import Trainer

    args = make_parser().parse_args(["train", "--out", str(tmp_path / "run"), "--device", "cpu"])
    t = Trainer(build_train_config(args), verbose=False)
    assert t.model.config == GPTConfig()


def test_train_help_and_choices_come_from_the_tables(monkeypatch, capsys):
    from tinyllm.models import MODELS
    from tinyllm.optim import SCHEDULES
    from tinyllm.train import config

    monkeypatch.setitem(config.MODEL_DEFAULTS["gpt"], "lr", 7e-3)
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # help lines are wrapped
    for flag, table in (("--model", MODELS), ("--optimizer", config.OPTIMIZERS), ("--schedule", SCHEDULES),
                        ("--tokenizer", config.TOKENIZERS)):
        assert f"{flag} {{{','.join(table)}}}" in text
    gpt = MODELS["gpt"][1]()
    assert "peak learning rate (default 0.007 for gpt" in text
    assert f"(default {gpt.n_embd} for gpt" in text and f"(default {gpt.block_size} for gpt" in text
