"""The real `tinyllm` process under what a shell does to it (issue 14): a pipe closed by `head`, SIGTERM,
Ctrl-C while sampling, requests too large for the memory, mistakes in the flags. Nothing lost, nothing
hangs, no traceback.

Each child runs under an address-space limit (see cliproc.py).
"""
import os
import signal
import time

import pytest

from tinyllm.train import load_checkpoint

from cliproc import ROOT, TINY, events, no_traceback, read_within, run, start


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    """A tiny model trained on text (not lines), to sample from."""
    d = tmp_path_factory.mktemp("text")
    data = d / "input.txt"
    data.write_text(open(os.path.join(ROOT, "..", "shared", "data", "tinyshakespeare.txt")).read()[:20000])
    code, _, err = run("train", *TINY, "--steps", "2", "--data", str(data), "--no-lines", "--out", str(d / "run"))
    assert code == 0, err
    return str(d / "run")


@pytest.fixture(scope="module")
def names_run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("names") / "run")
    code, _, err = run("train", *TINY, "--steps", "2", "--out", out)
    assert code == 0, err
    return out


# -- 14.3: `tinyllm train | head -3` -----------------------------------------------------------------

def test_train_into_a_pipe_closed_by_head_keeps_training_to_the_end(tmp_path):
    out = str(tmp_path / "run")
    p = start("train", *TINY, "--steps", "40", "--eval-interval", "1", "--out", out)
    head = [p.stdout.readline() for _ in range(3)]  # what `head -3` reads, then it exits
    assert head[1].startswith("step 0/40")
    p.stdout.close()
    err = p.stderr.read()
    assert p.wait(timeout=120) == 0, err
    no_traceback(err)
    assert "stdout was closed" in err  # not silent: one warning line says what happened
    assert events(out)[-1]["event"] == "end" and load_checkpoint(out)[1]["step"] == 40
    assert os.path.exists(os.path.join(out, "loss.png"))


# -- 14.4: SIGTERM saves like Ctrl-C and exits 143 -----------------------------------------------------

def test_sigterm_finishes_the_step_saves_and_exits_143(tmp_path):
    out = str(tmp_path / "run")
    p = start("train", *TINY, "--steps", "100000", "--eval-interval", "100000", "--out", out)
    assert p.stdout.readline().startswith("device ")
    assert p.stdout.readline().startswith("step 0/100000")  # the loop (and its guard) is running
    time.sleep(0.5)
    p.send_signal(signal.SIGTERM)
    rest, err = p.communicate(timeout=120)
    assert p.returncode == 143, err
    no_traceback(err)
    step = load_checkpoint(out)[1]["step"]
    assert step > 0 and f"stopped by SIGTERM at step {step}/100000; checkpoint saved" in err
    # and it continues from there
    code, _, err = run("train", "--resume", "--out", out, "--steps", str(step + 2), "--device", "cpu")
    assert code == 0, err
    assert load_checkpoint(out)[1]["step"] == step + 2


# -- 14.14 / 14.6: sampling streams, so Ctrl-C keeps the text; memory stays bounded ------------------------

def test_sample_streams_text_and_ctrl_c_keeps_it(text_run):
    p = start("sample", "--out", text_run, "--num-samples", "1", "--max-new-tokens", "10000000", "--device", "cpu")
    shown = read_within(p.stdout, 200, 60)
    assert len(shown) == 200, "no text within 60 s: sample does not stream"
    p.send_signal(signal.SIGINT)
    rest, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    no_traceback(err)
    assert "sampling interrupted" in err and len(shown + rest) >= 200


def test_sample_a_hundred_million_lines_streams_in_bounded_memory(names_run):
    p = start("sample", "--out", names_run, "--num-samples", "100000000", "--device", "cpu")
    shown = read_within(p.stdout, 300, 60)
    assert shown.count("\n") >= 20, f"got {shown!r}"  # names arrive while the rest are being made
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    no_traceback(err)


def test_sample_negative_seed_is_one_line(names_run):
    code, out, err = run("sample", "--out", names_run, "--seed", "-1", "--device", "cpu")
    assert code == 2 and err == "error: seed must be an integer >= 0, got -1\n", err


def test_sample_max_new_tokens_zero_means_zero(text_run):
    code, out, err = run("sample", "--out", text_run, "--max-new-tokens", "0", "--num-samples", "2",
                         "--prompt", "ROMEO", "--device", "cpu")
    assert code == 0, err
    assert out.split("\n" + "-" * 40 + "\n") == ["ROMEO", "ROMEO\n"]  # the prompt only, no new token


# -- 14.6: a model too large for the memory: one line, exit 3, the memory it needs -------------------------

@pytest.mark.parametrize("size", [["--n-embd", "100000"], ["--n-layer", "100000"]])
def test_a_model_too_large_is_refused_with_the_memory_it_needs(tmp_path, size):
    out = tmp_path / "run"
    code, _, err = run("train", *size, "--steps", "2", "--device", "cpu", "--out", str(out), timeout=60)
    assert code == 3, err
    no_traceback(err)
    assert err.startswith("error: the model would have ") and "parameters" in err and "GiB" in err
    assert err.count("\n") == 1 and not out.exists()


# -- 14.13: a mistake in the flags is one line and a pointer to --help ---------------------------------------

@pytest.mark.parametrize("args, expect", [
    (["train", "--steps", "abc"], "argument --steps: invalid int value: 'abc'"),
    (["train", "--modle", "gpt"], "unrecognized arguments: --modle"),
    (["sample", "--top-k"], "argument --top-k: expected one argument"),
    (["fly"], "invalid choice: 'fly'"),
])
def test_a_flag_mistake_is_one_line_with_a_pointer_to_help(args, expect):
    code, out, err = run(*args)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and expect in err, err
    assert err.rstrip().endswith("--help") and "usage:" not in err


def test_version():
    from tinyllm import __version__

    code, out, err = run("--version")
    assert code == 0 and out.strip() == f"tinyllm {__version__}", err
