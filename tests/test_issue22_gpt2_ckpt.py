"""Issue 22, GPT-2 directories and checkpoints: a padded vocabulary (tokenizer < vocab_size) saves a run that
loads again; sizes beyond the memory refused before a model is built (config.json and checkpoint.json); a
tokenizer id outside the vocabulary; a resumed BPE / --init-from run keeps its stored tokenizer; export's
mode and error lines; --init-from with --tokenizer; nan/inf weights; what export suggests for a char run."""
import errno
import json
import os
import stat

import numpy as np
import pytest

from test_hf_gpt2 import _gpt2_dir, _rewrite
from tinyllm.cli import EXIT_BAD_INPUT, EXIT_FAILED, main
from tinyllm.train import load_checkpoint
from tinyllm.train.checkpoint import INDEX

TEXT = "the cat sat on the mat. the dog sat on the log. " * 30
FIT = ["--steps", "2", "--eval-interval", "2", "--eval-iters", "1", "--batch-size", "2", "--block-size", "16",
       "--samples", "0", "--device", "cpu"]
SAMPLE = ["--max-new-tokens", "4", "--num-samples", "1", "--device", "cpu"]


def one_line(capsys, code_got, code=EXIT_BAD_INPUT) -> str:
    """The one error line a refused command printed (warnings aside), after checking its exit code."""
    err = capsys.readouterr().err
    assert code_got == code, err
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("warning:")]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def data_file(tmp_path, text=TEXT) -> str:
    p = tmp_path / "my.txt"
    p.write_text(text)
    return str(p)


def edit_json(path, fn) -> None:
    with open(path) as f:
        d = json.load(f)
    fn(d)
    with open(path, "w") as f:
        json.dump(d, f)


# -- 1: a padded vocabulary (50,304 for 50,257 tokens) -----------------------------------------------------------

def test_a_fine_tune_of_a_padded_gpt2_directory_saves_a_run_that_loads(tmp_path, capsys):
    d, tok = _gpt2_dir(tmp_path, TEXT, vocab_size=300)  # 262 tokens, 300 rows: padded as GPT-2 pads
    run, hf = str(tmp_path / "run"), str(tmp_path / "hf")
    assert main(["train", "--init-from", d, "--data", data_file(tmp_path), *FIT, "--out", run]) == 0
    assert load_checkpoint(run)[1]["config"]["vocab_size"] == 300
    assert main(["sample", "--out", run, *SAMPLE]) == 0
    assert main(["train", "--resume", "--out", run, "--steps", "4"]) == 0
    assert main(["export", "--out", run, hf]) == 0
    assert json.load(open(os.path.join(hf, "config.json")))["vocab_size"] == 300
    assert main(["sample", "--init-from", hf, *SAMPLE]) == 0
    assert "error" not in capsys.readouterr().err


# -- 3: sizes beyond the memory, before a model is built ----------------------------------------------------------

@pytest.mark.parametrize("sizes", [{"n_layer": 10**9}, {"vocab_size": 10**12}, {"n_embd": 2**20}])
@pytest.mark.parametrize("command", ["sample", "train"])
def test_init_from_a_config_beyond_the_memory_is_one_line_exit_3(sizes, command, tmp_path, capsys):
    d, _ = _gpt2_dir(tmp_path, TEXT)
    edit_json(os.path.join(d, "config.json"), lambda c: c.update(sizes))
    args = [*SAMPLE] if command == "sample" else ["--data", data_file(tmp_path), *FIT, "--out", str(tmp_path / "r")]
    line = one_line(capsys, main([command, "--init-from", d, *args]), EXIT_FAILED)
    assert "parameters" in line and "of memory" in line and "config.json" in line, line
    assert not os.path.exists(tmp_path / "r")


@pytest.mark.parametrize("key", ["n_layer", "n_embd", "vocab_size", "n_positions"])
def test_init_from_a_non_integer_size_is_one_line_exit_2(key, tmp_path, capsys):
    d, _ = _gpt2_dir(tmp_path, TEXT)
    edit_json(os.path.join(d, "config.json"), lambda c: c.update({key: 1e9}))
    assert f"{key} is 1000000000.0, expected int" in one_line(capsys, main(["sample", "--init-from", d, *SAMPLE]))


def test_a_config_json_whose_layers_the_file_lacks_is_refused_before_building(tmp_path, capsys):
    d, _ = _gpt2_dir(tmp_path, TEXT)
    edit_json(os.path.join(d, "config.json"), lambda c: c.update(n_layer=20000))  # fits the memory: 65M weights
    line = one_line(capsys, main(["sample", "--init-from", d, *SAMPLE]))
    assert "holds 2 blocks (h.0, h.1, ...), config.json says n_layer 20000" in line


@pytest.mark.parametrize("sizes", [{"n_layer": 10**6}, {"n_layer": 300}, {"n_embd": 2**20, "n_head": 2}])
def test_a_hand_edited_checkpoint_size_is_refused_before_building(sizes, tmp_path, capsys):
    run = str(tmp_path / "run")
    assert main(["train", "--n-layer", "1", "--n-head", "2", "--n-embd", "16", *FIT, "--block-size", "8",
                 "--out", run]) == 0
    capsys.readouterr()
    edit_json(os.path.join(run, INDEX), lambda i: i["meta"]["config"].update(sizes))
    for argv in (["sample", "--out", run, *SAMPLE], ["export", "--out", run, str(tmp_path / "hf")],
                 ["train", "--resume", "--out", run, "--steps", "4"]):
        line = one_line(capsys, main(argv))
        assert "is damaged: its model settings describe" in line and "its tensor file holds" in line, line
    assert not os.path.exists(tmp_path / "hf")


# -- 6: a tokenizer id outside the model's vocabulary ----------------------------------------------------------

@pytest.mark.parametrize("new_id", [262, 100000])
def test_a_tokenizer_id_beyond_vocab_size_is_one_line(new_id, tmp_path, capsys):
    d, tok = _gpt2_dir(tmp_path, TEXT)  # 262 tokens, vocab_size 262: ids 0..261
    path = os.path.join(d, "tokenizer.json")
    last = tok.vocab_size - 1
    edit_json(path, lambda j: j["model"]["vocab"].update(
        {next(k for k, i in j["model"]["vocab"].items() if i == last): new_id}))
    for argv in (["train", "--init-from", d, "--data", data_file(tmp_path), *FIT, "--out", str(tmp_path / "r")],
                 ["sample", "--init-from", d, *SAMPLE]):
        line = one_line(capsys, main(argv))
        assert f"has token id {new_id}, outside the model's vocab_size 262 (ids 0..261) in config.json" in line


# -- 15: a resumed BPE / --init-from run uses the tokenizer stored in its checkpoint -----------------------------

def test_a_bpe_run_resumes_after_its_data_file_changed(tmp_path, capsys):
    data, run = data_file(tmp_path), str(tmp_path / "run")
    assert main(["train", "--data", data, "--tokenizer", "bpe", "--vocab-size", "270", "--n-layer", "1",
                 "--n-head", "2", "--n-embd", "16", *FIT, "--out", run]) == 0
    saved = load_checkpoint(run)[1]["tokenizer"]
    with open(data, "a") as f:
        f.write("and then something quite different was appended to the file. " * 20)
    capsys.readouterr()
    assert main(["train", "--resume", "--out", run, "--steps", "4"]) == 0
    assert "the data differs from the data the checkpoint was trained on" in capsys.readouterr().err
    assert load_checkpoint(run)[1]["tokenizer"] == saved and load_checkpoint(run)[1]["step"] == 4


def test_a_replaced_init_from_directory_names_what_differs_and_resumes(tmp_path, capsys):
    d, tok = _gpt2_dir(tmp_path, TEXT)
    run = str(tmp_path / "run")
    assert main(["train", "--init-from", d, "--data", data_file(tmp_path), *FIT, "--out", run]) == 0
    from tinyllm.data.bpe import train_bpe

    with open(os.path.join(d, "tokenizer.json"), "w") as f:  # another model's tokenizer, 258 tokens
        f.write(train_bpe(["some other text for another tokenizer " * 20], 258).to_json())
    capsys.readouterr()
    assert main(["train", "--resume", "--out", run, "--steps", "4"]) == 0
    err = capsys.readouterr().err
    assert (f"the tokenizer in --init-from {d} is not the one this run was trained with (it was trained with a bpe "
            f"tokenizer of 262 tokens, {d} holds one of 258 tokens); resuming with the run's own tokenizer") in err
    assert load_checkpoint(run)[1]["tokenizer"]["json"] == tok.to_json()


# -- 17: export's mode and error lines; --init-from with --tokenizer; nan/inf weights ----------------------------

@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _bpe_run(tmp_path) -> str:
    d, _ = _gpt2_dir(tmp_path, TEXT)
    run = str(tmp_path / "run")
    assert main(["train", "--init-from", d, "--data", data_file(tmp_path), *FIT, "--out", run]) == 0
    return run


def test_export_makes_dest_as_mkdir_would_and_keeps_an_empty_dirs_mode(tmp_path, umask_022, capsys):
    run = _bpe_run(tmp_path)
    new, mine = tmp_path / "new", tmp_path / "mine"
    assert main(["export", "--out", run, str(new)]) == 0
    assert stat.S_IMODE(os.stat(new).st_mode) == 0o755
    mine.mkdir()
    mine.chmod(0o750)
    assert main(["export", "--out", run, str(mine)]) == 0
    assert stat.S_IMODE(os.stat(mine).st_mode) == 0o750 and "config.json" in os.listdir(mine)


@pytest.mark.parametrize("err, words, code", [
    (errno.ENOSPC, "the disk is full; free some space", EXIT_FAILED),
    (errno.EROFS, "the file system is read-only; choose a destination on a writable file system", EXIT_BAD_INPUT),
    (errno.EACCES, "permission denied; choose a destination you can write to", EXIT_BAD_INPUT),
], ids=["ENOSPC", "EROFS", "EACCES"])
def test_export_says_what_went_wrong_writing(err, words, code, tmp_path, capsys, monkeypatch):
    run = _bpe_run(tmp_path)
    capsys.readouterr()
    real = os.mkdir

    def mkdir(path, *a, **k):  # the file system refuses the new directory (no root needed to see it)
        if ".tmp-" in os.path.basename(path):
            raise OSError(err, os.strerror(err))
        return real(path, *a, **k)

    monkeypatch.setattr(os, "mkdir", mkdir)
    line = one_line(capsys, main(["export", "--out", run, str(tmp_path / "hf")]), code)
    assert f"cannot write the export to {str(tmp_path / 'hf')!r}: {words}" in line
    assert not os.path.exists(tmp_path / "hf") and not [f for f in os.listdir(tmp_path) if ".tmp-" in f]


def test_export_under_a_file_says_so(tmp_path, capsys):
    run = _bpe_run(tmp_path)
    (tmp_path / "afile").write_text("x")
    capsys.readouterr()
    line = one_line(capsys, main(["export", "--out", run, str(tmp_path / "afile" / "hf")]))
    assert "a part of its path is a file, not a directory" in line and "free some space" not in line


def test_init_from_with_tokenizer_char_is_refused(tmp_path, capsys):
    d, _ = _gpt2_dir(tmp_path, TEXT)
    argv = ["train", "--init-from", d, "--tokenizer", "char", "--data", data_file(tmp_path), *FIT,
            "--out", str(tmp_path / "r")]
    line = one_line(capsys, main(argv))
    assert "--init-from brings its own tokenizer" in line and "drop --tokenizer" in line
    assert not os.path.exists(tmp_path / "r")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_init_from_non_finite_weights_is_one_line(bad, tmp_path, capsys):
    d, _ = _gpt2_dir(tmp_path, TEXT)

    def spoil(t):
        t["transformer.h.1.mlp.c_fc.weight"] = t["transformer.h.1.mlp.c_fc.weight"].copy()
        t["transformer.h.1.mlp.c_fc.weight"][3, 5] = bad
        return t

    _rewrite(d, spoil)
    for argv in (["sample", "--init-from", d, *SAMPLE],
                 ["train", "--init-from", d, "--data", data_file(tmp_path), *FIT, "--out", str(tmp_path / "r")]):
        line = one_line(capsys, main(argv))
        assert "tensor 'transformer.h.1.mlp.c_fc.weight' holds nan or inf" in line, line


# -- friction: what export suggests for a char run --------------------------------------------------------------

def test_export_of_a_char_run_suggests_what_works(tmp_path, capsys):
    run, hf = str(tmp_path / "run"), str(tmp_path / "hf")
    assert main(["train", "--n-layer", "1", "--n-head", "2", "--n-embd", "16", *FIT, "--block-size", "8",
                 "--out", run]) == 0
    capsys.readouterr()
    assert main(["export", "--out", run, hf]) == 0
    out = capsys.readouterr().out
    assert "--init-from" not in out and f"tinyllm sample --out {run}" in out and "from_pretrained" in out
    assert main(["sample", "--out", run, *SAMPLE]) == 0  # what it suggests works
