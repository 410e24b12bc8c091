"""The Trainer: exact resume, validation before any write, guards, logs, cross-device checkpoints."""
import hashlib
import importlib.util
import json
import math
import os

import numpy as np
import pytest

from backends import DeviceError, cuda_problem
from tinyllm import Trainer, TrainConfig, load_trained
from tinyllm.data import DataError
from tinyllm.train import CheckpointError, ConfigError, NonFiniteError, has_checkpoint, load_checkpoint

TINY = dict(n_layer=1, n_head=2, n_embd=16, block_size=8, batch_size=4, eval_iters=2, samples=0)


def cfg(out, **kw):
    return TrainConfig(out=str(out), **{"device": "cpu", "steps": 6, "eval_interval": 3, **TINY, **kw})


def snapshot(d) -> dict:
    return {f: hashlib.sha256(open(os.path.join(d, f), "rb").read()).hexdigest()
            for f in sorted(os.listdir(d)) if os.path.isfile(os.path.join(d, f))}


def weights(t):
    return {k: t.backend.to_host(v).copy() for k, v in t.model.state_dict().items()}


def test_resume_is_exact(backend, tmp_path):
    """N steps straight == N/2 steps, a new Trainer resuming from the checkpoint, N/2 more."""
    kw = dict(device=backend.name, steps=10, eval_interval=4, dropout=0.1, n_layer=2)
    straight = Trainer(cfg(tmp_path / "a", **kw), verbose=False).fit()
    Trainer(cfg(tmp_path / "b", **kw), verbose=False).fit(until=5)
    assert load_checkpoint(str(tmp_path / "b"))[1]["step"] == 5
    resumed = Trainer(cfg(tmp_path / "b", resume=True, **kw), verbose=False)
    assert resumed.step == 5
    resumed.fit()
    assert len(straight.losses) == 10
    assert resumed.losses == straight.losses  # bit for bit
    wa, wb = weights(straight), weights(resumed)
    for k in wa:
        np.testing.assert_array_equal(wa[k], wb[k])
    at = {e["step"]: e["val"] for e in resumed.evals}  # (plus an extra evaluation where it stopped, step 5)
    assert [at[e["step"]] for e in straight.evals] == [e["val"] for e in straight.evals]


TORCH = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")


@pytest.mark.parametrize("first, then", [("strict:1", "cpu"), ("cpu", "strict:1"),
                                         pytest.param("torch", "cpu", marks=TORCH),
                                         pytest.param("cpu", "torch", marks=TORCH)])
def test_resume_on_another_device(tmp_path, first, then):
    """Trained on one device, resumed on another: the same losses to float32 tolerance (rtol 1e-5; the
    dropout masks are bit-identical on every device, only the ops' rounding differs: cpu runs fused
    kernels, strict and torch the standard ops) and weights within 1e-6."""
    kw = dict(steps=10, eval_interval=5, dropout=0.1, n_layer=2)
    straight = Trainer(cfg(tmp_path / "a", device=first, **kw), verbose=False).fit()
    Trainer(cfg(tmp_path / "b", device=first, **kw), verbose=False).fit(until=5)
    resumed = Trainer(cfg(tmp_path / "b", device=then, resume=True, **kw), verbose=False).fit()
    assert resumed.backend.name == then and resumed.losses[:5] == straight.losses[:5]
    np.testing.assert_allclose(resumed.losses, straight.losses, rtol=1e-5)
    wa, wb = weights(straight), weights(resumed)
    for k in wa:
        np.testing.assert_allclose(wb[k], wa[k], rtol=0, atol=1e-6)


def test_training_lowers_the_loss_and_writes_its_outputs(tmp_path):
    t = Trainer(cfg(tmp_path, steps=40, eval_interval=20, lr=5e-3), verbose=False).fit()
    assert t.evals[-1]["val"] < t.evals[0]["val"] - 0.3
    files = set(os.listdir(tmp_path))
    assert {"checkpoint.json", "log.jsonl", "loss.png"} <= files
    events = [json.loads(l)["event"] for l in open(tmp_path / "log.jsonl")]
    assert [e for e in events if e != "step"] == ["start", "eval", "eval", "eval", "end"]
    assert events.count("step") == 4  # every log_interval (10) steps
    names = t.generate(num_samples=3, seed=1)
    assert len(names) == 3 and all(isinstance(s, str) for s in names)


@pytest.mark.parametrize("model", ["mlp", "bigram"])
def test_other_models_train(tmp_path, model):
    t = Trainer(TrainConfig(model=model, steps=30, eval_interval=30, eval_iters=2, batch_size=16, samples=0,
                            out=str(tmp_path), device="cpu"), verbose=False).fit()
    assert t.evals[-1]["val"] < t.evals[0]["val"]
    m, tok, meta = load_trained(str(tmp_path), "cpu")
    assert meta["model"] == model and type(m).__name__ == type(t.model).__name__


def test_checkpoint_loads_on_another_backend(tmp_path):
    t = Trainer(cfg(tmp_path), verbose=False).fit()
    m, tok, meta = load_trained(str(tmp_path), "strict")
    assert m.backend.name == "strict" and tok.to_dict() == t.tokenizer.to_dict()
    ids = [[0, 1, 2, 3]]
    a = t.backend.to_host(t.model(t.backend.from_host(ids, "int64"))[0].data)
    b = m.backend.to_host(m(m.backend.from_host(ids, "int64"))[0].data)
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("bad, err, match", [
    (dict(steps=0), ConfigError, "steps"),
    (dict(batch_size=-1), ConfigError, "batch_size"),
    (dict(n_layer=0), ConfigError, "n_layer"),
    (dict(block_size=0), ConfigError, "block_size"),
    (dict(n_embd=30, n_head=4), ConfigError, "divisible"),
    (dict(lr=0.0), ConfigError, "lr"),
    (dict(dropout=1.0), ConfigError, "dropout"),
    (dict(schedule="step"), ConfigError, "schedule"),
    (dict(device="tpu"), DeviceError, "unknown device"),
    (dict(data="/nonexistent/file.txt"), DataError, "does not exist"),
    (dict(block_size=50_000), DataError, "too short"),  # names val split: ~22,700 tokens
])
def test_bad_settings_fail_before_the_output_dir_is_touched(tmp_path, bad, err, match):
    out = tmp_path / "run"
    with pytest.raises(err, match=match) as e:
        Trainer(cfg(out, **bad), verbose=False)
    assert "\n" not in str(e.value)
    assert not out.exists()


def test_failed_validation_leaves_an_existing_checkpoint_alone(tmp_path):
    Trainer(cfg(tmp_path), verbose=False).fit()
    before = snapshot(tmp_path)
    other = tmp_path.parent / "other.txt"
    other.write_text("the quick brown fox jumps over the lazy dog. " * 20)
    with pytest.raises(CheckpointError, match="tokenizer"):  # resume with different data
        Trainer(cfg(tmp_path, resume=True, steps=12, data=str(other)), verbose=False)
    with pytest.raises(ConfigError, match="divisible"):
        Trainer(cfg(tmp_path, n_embd=30, n_head=4), verbose=False)
    with pytest.raises(ConfigError, match="n_embd=16"):  # resume asking for another size
        Trainer(cfg(tmp_path, resume=True, steps=12, n_embd=32), verbose=False)
    with pytest.raises(ConfigError, match="already at step 6"):
        Trainer(cfg(tmp_path, resume=True, steps=6), verbose=False)
    assert snapshot(tmp_path) == before


SAVED = dict(lr=0.004, batch_size=3, schedule="linear", warmup=2, min_lr=1e-4, beta2=0.95)


def test_library_resume_takes_the_checkpoints_settings(tmp_path):
    """Trainer(TrainConfig(resume=True)) continues with the saved lr, batch size and schedule, as
    `tinyllm train --resume` does; a setting given explicitly wins, even one equal to the default."""
    Trainer(cfg(tmp_path, **SAVED), verbose=False).fit()
    t = Trainer(TrainConfig(out=str(tmp_path), resume=True, steps=9), verbose=False)
    assert {k: getattr(t.config, k) for k in SAVED} == SAVED
    assert t.config.n_embd == 16 and t.config.device == "auto" and t.step == 6
    t.fit()
    assert load_checkpoint(str(tmp_path))[1]["train"]["lr"] == 0.004
    given = TrainConfig(out=str(tmp_path), resume=True, steps=12, batch_size=32).resolve()
    assert given.batch_size == 32 and given.lr == 0.004


def test_resume_settings_come_from_checkpoint_json_alone(tmp_path):
    Trainer(cfg(tmp_path, **SAVED), verbose=False).fit()
    for f in os.listdir(tmp_path):
        if f.endswith(".safetensors"):
            os.remove(tmp_path / f)  # the tensors are not read to learn the settings
    c = TrainConfig(out=str(tmp_path), resume=True).resolve()
    assert {k: getattr(c, k) for k in SAVED} == SAVED and c.steps == 6


def test_resume_from_missing_or_incomplete_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        Trainer(cfg(tmp_path / "nothing", resume=True), verbose=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no checkpoint"):
        Trainer(cfg(tmp_path / "empty", resume=True), verbose=False)
    Trainer(cfg(tmp_path / "run"), verbose=False).fit()
    for f in os.listdir(tmp_path / "run"):
        if f.endswith(".safetensors"):
            os.remove(tmp_path / "run" / f)
    with pytest.raises(CheckpointError, match="missing"):
        Trainer(cfg(tmp_path / "run", resume=True, steps=12), verbose=False)


def poison(trainer, at_steps):
    """Make the loss nan on the given (1-based) steps, through the real forward pass."""
    orig, calls = trainer.model.forward, {"n": 0}

    def forward(idx, targets=None, **kw):
        out = orig(idx, targets, **kw)
        if targets is not None and trainer.model.training:
            calls["n"] += 1
            if calls["n"] in at_steps:
                return out[0], out[1] * math.nan
        return out

    trainer.model.forward = forward


def test_nonfinite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    t = Trainer(cfg(tmp_path, steps=9), verbose=False)
    poison(t, {5})
    with pytest.raises(NonFiniteError, match="step 5.*nan"):
        t.fit()
    _, meta = load_checkpoint(str(tmp_path))
    assert meta["step"] == 3  # the checkpoint from the last evaluation, untouched


def test_skip_nonfinite_skips_and_counts(tmp_path):
    t = Trainer(cfg(tmp_path, steps=9, skip_nonfinite=True), verbose=False)
    poison(t, {2, 7})
    t.fit()
    assert t.skipped == 2 and t.losses[1] is None and t.losses[6] is None
    assert all(np.isfinite(v).all() for v in weights(t).values())
    assert t.evals[-1]["skipped"] == 2
    assert load_checkpoint(str(tmp_path))[1]["skipped"] == 2


def test_too_many_consecutive_nonfinite_steps_give_up(tmp_path):
    t = Trainer(cfg(tmp_path, steps=40, eval_interval=40, skip_nonfinite=True), verbose=False)
    poison(t, set(range(3, 41)))
    with pytest.raises(NonFiniteError, match="in a row"):
        t.fit()


def test_cuda_request_without_gpu_falls_back_with_one_warning(tmp_path, capsys):
    if cuda_problem(0) is None:
        pytest.skip("a GPU is usable here: no fallback to test")
    t = Trainer(cfg(tmp_path, device="cuda"), verbose=False)
    assert t.backend.name == "cpu"
    err = capsys.readouterr().err
    assert err.count("warning") == 1 and "Falling back to cpu" in err


def test_first_log_line_names_device_and_backend(tmp_path, capsys):
    Trainer(cfg(tmp_path, device="strict", steps=3)).fit()
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("device strict (array-api-strict backend)")
    assert any(l.startswith("step 3/3 | loss ") and "ms/step" in l and "tok/s" in l for l in out)


def test_library_overrides_and_unknown_settings(tmp_path):
    t = Trainer(cfg(tmp_path), verbose=False, steps=4)
    assert t.config.steps == 4
    with pytest.raises(ConfigError, match="unknown"):
        Trainer(cfg(tmp_path), verbose=False, stepz=4)
    assert not has_checkpoint(str(tmp_path))


def test_without_matplotlib_a_one_line_note(tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` raises ImportError
    Trainer(cfg(tmp_path, steps=3)).fit()
    notes = [l for l in capsys.readouterr().out.splitlines() if l.startswith("note: matplotlib")]
    assert len(notes) == 1 and "tinyllm[plot]" in notes[0]
    assert not (tmp_path / "loss.png").exists() and (tmp_path / "checkpoint.json").exists()


def test_out_of_memory_becomes_one_line(tmp_path):
    from tinyllm.train import OutOfMemory

    t = Trainer(cfg(tmp_path, steps=5), verbose=False)
    orig = t.model.forward

    def forward(idx, targets=None, **kw):
        if targets is not None and t.model.training:
            raise MemoryError("Unable to allocate 1.50 GiB for an array with shape (12, 4, 64, 64)")
        return orig(idx, targets, **kw)

    t.model.forward = forward
    with pytest.raises(OutOfMemory, match="out of host memory: allocating 1.50 GiB failed; use a smaller --batch-size"):
        t.fit()


def test_a_second_run_on_a_locked_directory_is_refused(tmp_path):
    from tinyllm.train import LockError, RunLock

    with RunLock(str(tmp_path)):
        with pytest.raises(LockError, match="in use by another run"):
            Trainer(cfg(tmp_path), verbose=False).fit()
    assert not has_checkpoint(str(tmp_path))
