"""Settings and metadata a user can get wrong (issue 14.6, 14.7, 14.10, 14.13, 14.14): TOML values of the
wrong type, a hand-edited checkpoint.json, --resume from another directory, messages that point the
right way, where a library run writes, and what the README and .gitignore promise."""
import json
import os
import re

import numpy as np
import pytest

from tinyllm import Trainer, TrainConfig
from tinyllm.cli import main
from tinyllm.train import ConfigError, load_checkpoint, load_toml

from cliproc import ROOT, TINY


def one_error_line(capsys, code, want=2) -> str:
    err = capsys.readouterr().err
    assert code == want, err
    lines = [l for l in err.splitlines() if l.strip() and not l.startswith("warning:")]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def train(*args) -> int:
    return main(["train", *TINY, *args])


# -- 14.7 / 14.6: every TOML value has its flag's type --------------------------------------------------------

@pytest.mark.parametrize("toml, expect", [
    ('bias = "no"', "bias must be true or false, got 'no' (a string)"),
    ('bias = "yes"', "bias must be true or false, got 'yes' (a string)"),
    ("samples = true", "samples must be an integer, got True (a boolean)"),
    ("steps = 2.5", "steps must be an integer, got 2.5 (a number)"),
    ('lr = "1e-3"', "lr must be a number, got '1e-3' (a string)"),
    ('model = ["gpt"]', "model must be a string, got ['gpt'] (an array)"),
    ('data = 3', "data must be a string, got 3 (an integer)"),
    ('[model]\nname = "gpt"\nbias = "no"', "[model] bias must be true or false, got 'no' (a string)"),
    ('[model]\nname = "gpt"\nn_layer = "2"', "[model] n_layer must be an integer, got '2' (a string)"),
])
def test_a_toml_value_of_the_wrong_type_is_refused_naming_key_and_type(tmp_path, capsys, toml, expect):
    conf = tmp_path / "run.toml"
    conf.write_text(toml + "\n")
    out = tmp_path / "run"
    line = one_error_line(capsys, train("--config", str(conf), "--out", str(out)))
    assert line.startswith(f"error: config file {str(conf)!r}: ") and expect in line, line
    assert not out.exists()


def test_settings_from_python_are_type_checked_too(tmp_path):
    with pytest.raises(ConfigError, match=r"bias \(--bias\) must be true or false \(or unset\), got 'no'"):
        Trainer(TrainConfig(bias="no", out=str(tmp_path)), verbose=False)
    with pytest.raises(ConfigError, match="must be true or false, got 'no'"):
        Trainer(TrainConfig(model_args={"tie_weights": "no"}, out=str(tmp_path)), verbose=False)


def test_toml_values_of_the_right_type_still_load(tmp_path):
    conf = tmp_path / "run.toml"
    conf.write_text('bias = false\nlr = 1\nsteps = 3\n[model]\nname = "gpt"\ntie_weights = false\n')
    assert load_toml(str(conf)) == {"bias": False, "lr": 1, "steps": 3, "model": "gpt",
                                    "model_args": {"tie_weights": False}}


# -- 14.6: a hand-edited checkpoint.json is refused as strictly as the tensors ---------------------------------

@pytest.fixture
def run_dir(tmp_path):
    out = str(tmp_path / "run")
    assert train("--steps", "4", "--eval-interval", "2", "--out", out) == 0
    return out


def _edit(out, change):
    path = os.path.join(out, "checkpoint.json")
    index = json.load(open(path))
    change(index["meta"])
    json.dump(index, open(path, "w"))


EDITS = {
    "tokenizer list shortened": lambda m: m["tokenizer"].update(tokens=m["tokenizer"]["tokens"][:-3]),
    "negative step_count": lambda m: m["optim"].update(step_count=-3),
    "negative step": lambda m: m.update(step=-2),
    "step as a string": lambda m: m.update(step="4"),
    "losses not numbers": lambda m: m.update(losses=["x"]),
    "config field of the wrong type": lambda m: m["config"].update(bias="no"),
}


@pytest.mark.parametrize("what", EDITS)
def test_a_hand_edited_checkpoint_json_is_one_line_exit_2(run_dir, capsys, what):
    _edit(run_dir, EDITS[what])
    capsys.readouterr()
    line = one_error_line(capsys, train("--resume", "--steps", "6", "--out", run_dir))
    assert run_dir in line
    if what in ("tokenizer list shortened", "config field of the wrong type"):
        # sampling reads the same metadata
        line = one_error_line(capsys, main(["sample", "--out", run_dir, "--device", "cpu"]))
        assert run_dir in line


# -- 14.10: --resume from another directory ---------------------------------------------------------------------

def test_resume_from_another_directory_finds_the_data(tmp_path, capsys, monkeypatch):
    text = open(os.path.join(ROOT, "..", "shared", "data", "tinyshakespeare.txt")).read()[:20000]
    (tmp_path / "input.txt").write_text(text)
    monkeypatch.chdir(tmp_path)
    assert train("--steps", "2", "--data", "input.txt", "--no-lines", "--out", "run") == 0
    assert load_checkpoint("run")[1]["train"]["data"] == str(tmp_path / "input.txt")  # stored resolved
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert train("--resume", "--steps", "4", "--out", str(tmp_path / "run")) == 0
    assert load_checkpoint(str(tmp_path / "run"))[1]["step"] == 4


def test_a_data_path_that_is_not_found_says_which_path_was_tried(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = one_error_line(capsys, train("--data", "input.txt", "--out", "run"))
    assert f"'input.txt' ({tmp_path / 'input.txt'}) does not exist" in line


# -- 14.13: the warnings do not suggest --skip-nonfinite when it is on --------------------------------------------

def test_skip_nonfinite_warnings_do_not_suggest_it(tmp_path, capsys):
    out = str(tmp_path / "run")
    diverge = ["--lr", "1e30", "--warmup", "0", "--schedule", "constant"]
    assert train("--steps", "1", *diverge, "--out", out) == 0  # weights ~1e30: the next step overflows
    capsys.readouterr()
    with np.errstate(all="ignore"):
        assert train("--steps", "3", "--resume", "--skip-nonfinite", "--out", out) == 0
    err = capsys.readouterr().err
    assert err.count("update skipped") == 2 and "--skip-nonfinite" not in err, err


# -- 14.14: where a library run writes --------------------------------------------------------------------------

def test_the_library_trainer_does_not_write_into_out_by_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    kw = dict(n_layer=1, n_head=2, n_embd=16, block_size=8, batch_size=4, eval_iters=1, samples=0, steps=2,
              device="cpu")
    a = Trainer(TrainConfig(**kw), verbose=False).fit()
    b = Trainer(TrainConfig(**kw), verbose=False).fit()  # a second run is not refused: a fresh directory
    assert not (tmp_path / "out").exists()
    assert a.out != b.out and all(re.fullmatch(r"runs/\d{8}-\d{6}-[0-9a-f]{8}", t.out) for t in (a, b))
    assert load_checkpoint(a.out)[1]["step"] == 2
    with pytest.raises(ConfigError, match="resume needs out"):
        TrainConfig(resume=True).validate()


# -- 14.14: the README and .gitignore ------------------------------------------------------------------------------

def read_doc(name: str) -> str:
    return open(os.path.join(ROOT, name), encoding="utf-8").read()


README = read_doc("README.md")
FAULTS = read_doc(os.path.join("docs", "faults.md"))  # the exit codes and what happens on bad input
TRAINING = read_doc(os.path.join("docs", "training.md"))  # data, the run.toml example, resuming
SETUP = ('python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[plot,fast]" && tinyllm train',
         'python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[test,cuda-dev]" && pytest')


def test_docs_faults_lists_every_exit_code():
    from tinyllm import cli

    codes = {int(c) for c in re.findall(r"^ {4}(\d+) ", cli.__doc__, re.M)}
    assert codes == {0, 1, 2, 3, 130, 143}
    line = next(l for l in FAULTS.splitlines() if l.startswith("Exit codes:"))
    assert {int(c) for c in re.findall(r"\b(\d+) [A-Za-z(]", line)} == codes, line
    assert "docs/faults.md" in README  # and the README points at it


def test_readme_and_docs_name_where_input_txt_comes_from_and_the_run_toml_trains(tmp_path, monkeypatch):
    for doc in (README, TRAINING):  # the README's first example and the page whose run.toml reads it
        assert "input.txt" in doc and "tinyshakespeare/input.txt" in doc
    toml = re.search(r"```toml\n(.*?)```", TRAINING, re.S).group(1)
    conf = tmp_path / "run.toml"
    conf.write_text(toml)
    settings = load_toml(str(conf))  # the sample's values have their flags' types
    assert settings["data"] == "input.txt"
    (tmp_path / "input.txt").write_text(open(os.path.join(ROOT, "..", "shared", "data",
                                                          "tinyshakespeare.txt")).read()[:30000])
    monkeypatch.chdir(tmp_path)  # the sample as written, shortened by flags
    assert main(["train", "--config", str(conf), "--steps", "2", "--eval-iters", "1", "--samples", "0",
                 "--device", "cpu", "--out", "run"]) == 0


def test_readme_is_short_keeps_the_two_setup_commands_and_its_docs_links_exist():
    assert len(README.splitlines()) <= 200, len(README.splitlines())
    blocks = re.findall(r"```bash\n(.*?)```", README, re.S)
    for command in SETUP:  # verbatim, each a code block of its own (CI runs the second)
        assert command + "\n" in blocks, command
    links = re.findall(r"\]\((docs/[^)#\s]+\.md)(?:#[^)]*)?\)", README)
    assert {"docs/devices.md", "docs/distributed.md", "docs/gpt2.md", "docs/speed.md", "docs/faults.md",
            "docs/env.md"} <= set(links), links
    for link in links:
        assert os.path.isfile(os.path.join(ROOT, link)), link


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as dashes."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_link_between_docs_pages_exists_with_its_anchor():
    pages = {"README.md": README}
    pages.update({os.path.join("docs", f): read_doc(os.path.join("docs", f))
                  for f in os.listdir(os.path.join(ROOT, "docs")) if f.endswith(".md")})
    for name, text in pages.items():
        for target, anchor in re.findall(r"\]\(([\w./-]+\.md)(?:#([\w-]+))?\)", text):
            path = os.path.normpath(os.path.join(os.path.dirname(name), target))
            assert path in pages, f"{name} links to {target}, which does not exist"
            if anchor:
                headings = re.findall(r"^#+ (.+)$", pages[path], re.M)
                assert anchor in {_anchor(h) for h in headings}, f"{name} links to {target}#{anchor}"


def test_gitignore_ignores_the_readme_venv():
    assert ".venv/" in open(os.path.join(ROOT, ".gitignore")).read().split()
