"""An output directory never loses a user's work (issue 14, items 1-2).

- a plain `tinyllm train` on an --out that holds a run refuses (exit 2) and
  leaves it byte-identical; --overwrite replaces it, --resume continues it;
- training removes only files its own run wrote: a user's files, even ones
  named like tinyllm's, survive, and --out . is safe.
"""
import json
import os

import pytest

from tinyllm.cli import EXIT_BAD_INPUT, main
from tinyllm.train import load_checkpoint
from tinyllm.train.checkpoint import committed_file
from tinyllm.train.lock import LOCK_NAME

TINY = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "8", "--batch-size", "4",
        "--steps", "3", "--eval-interval", "1", "--eval-iters", "1", "--samples", "0", "--device", "cpu"]


def tree(d) -> dict:
    """{relative path: bytes} of every file below d."""
    out = {}
    for root, _, files in os.walk(d):
        for f in files:
            p = os.path.join(root, f)
            out[os.path.relpath(p, d)] = open(p, "rb").read()
    return out


def error_line(capsys, code) -> str:
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT, err
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def test_second_plain_run_is_refused_and_the_first_is_untouched(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["train", *TINY, "--out", out]) == 0
    before = tree(out)
    line = error_line(capsys, main(["train", *TINY, "--out", out, "--lr", "1e-2"]))
    assert "already holds a training run" in line and "--resume" in line and "--overwrite" in line
    assert "another --out" in line
    assert tree(out) == before
    # a run killed before its first checkpoint left only a log: still refused (the logs would mix)
    os.remove(os.path.join(out, "checkpoint.json"))
    before = tree(out)
    line = error_line(capsys, main(["train", *TINY, "--out", out]))
    assert "log.jsonl" in line and "--resume" not in line and "--overwrite" in line
    assert tree(out) == before


def test_overwrite_replaces_the_earlier_run_and_resume_continues(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["train", *TINY, "--out", out]) == 0
    old_run, old_file = committed_file(out)
    assert main(["train", *TINY, "--out", out, "--overwrite", "--seed", "1"]) == 0
    new_run, new_file = committed_file(out)
    assert new_run != old_run and not os.path.exists(os.path.join(out, old_file))
    events = [json.loads(l)["event"] for l in open(os.path.join(out, "log.jsonl"))]
    assert events.count("start") == 1 and events[-1] == "end"  # the earlier run's log was not continued
    assert [f for f in os.listdir(out) if f.endswith(".safetensors")] == [new_file]
    assert main(["train", *TINY, "--out", out, "--resume", "--steps", "5"]) == 0
    assert committed_file(out)[0] == new_run and load_checkpoint(out)[1]["step"] == 5
    capsys.readouterr()
    line = error_line(capsys, main(["train", *TINY, "--out", out, "--resume", "--overwrite"]))
    assert "pass only one" in line


def test_training_removes_only_files_it_wrote(tmp_path):
    out = tmp_path / "u"
    out.mkdir()
    mine = {".tmp-important": b"x", "ckpt-12345678-deadbeef.safetensors": b"y",
            "ckpt-00000003-0badc0de-deadbeef.safetensors": b"named like ours, another run id",
            ".tmp-ckpt-00000001-0badc0de-00000000.safetensors": b"z", ".lock": b"a user's lock",
            "notes.txt": b"my notes"}
    (out / "sub").mkdir()
    (out / "sub" / "keep.txt").write_bytes(b"k")
    for name, data in mine.items():
        (out / name).write_bytes(data)
    assert main(["train", *TINY, "--out", str(out)]) == 0
    after = tree(out)
    for name, data in {**mine, "sub/keep.txt": b"k"}.items():
        assert after[name] == data, name
    ours = set(after) - set(mine) - {"sub/keep.txt"}
    run, tensor_file = committed_file(str(out))
    assert ours == {"checkpoint.json", "log.jsonl", "loss.png", tensor_file}
    assert f"-{run}-" in tensor_file


def test_out_dot_is_safe(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.txt").write_text("hello\n")
    (tmp_path / ".tmp-x").write_text("t")
    before = tree(tmp_path)
    assert main(["train", *TINY, "--out", "."]) == 0
    after = tree(tmp_path)
    assert {k: after[k] for k in before} == before
    assert set(after) - set(before) == {"checkpoint.json", "log.jsonl", "loss.png", committed_file(".")[1]}


def test_leftovers_of_this_run_are_cleaned_on_resume(tmp_path):
    """A writer killed mid-save leaves a temp or an uncommitted tensor file named with its run's id:
    the next save of that run removes them, and nothing else."""
    out = str(tmp_path / "run")
    assert main(["train", *TINY, "--out", out]) == 0
    run, _ = committed_file(out)
    leftovers = [f"ckpt-00000009-{run}-0000abcd.safetensors", f".tmp-ckpt-00000009-{run}-0000abcd.safetensors",
                 f".tmp-checkpoint.json-{run}-0000abcd"]
    foreign = ["ckpt-00000009-0badc0de-0000abcd.safetensors", ".tmp-checkpoint.json-0badc0de-0000abcd"]
    for f in leftovers + foreign:
        open(os.path.join(out, f), "wb").close()
    assert main(["train", *TINY, "--out", out, "--resume", "--steps", "4"]) == 0
    files = set(os.listdir(out))
    assert not files & set(leftovers) and set(foreign) <= files


def test_a_foreign_file_at_the_lock_path_is_refused_and_kept(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / LOCK_NAME).write_text("not a tinyllm lock")
    line = error_line(capsys, main(["train", *TINY, "--out", str(out)]))
    assert LOCK_NAME in line and "not written by tinyllm" in line
    assert (out / LOCK_NAME).read_text() == "not a tinyllm lock"


@pytest.mark.parametrize("resume", [False, True])
def test_library_trainer_refuses_too(tmp_path, resume):
    from tinyllm import TrainConfig, Trainer
    from tinyllm.train.checkpoint import OutputDirError

    kw = dict(n_layer=1, n_head=2, n_embd=16, block_size=8, batch_size=4, steps=2, eval_interval=1,
              eval_iters=1, samples=0, device="cpu", out=str(tmp_path))
    Trainer(TrainConfig(**kw), verbose=False).fit()
    if resume:
        Trainer(TrainConfig(**{**kw, "steps": 3}, resume=True), verbose=False).fit()
    else:
        with pytest.raises(OutputDirError, match="already holds a training run"):
            Trainer(TrainConfig(**kw), verbose=False)
