"""The host <-> device budget, counted by the backend, on every backend.

Training: per step only the batch's start offsets go in; a step that does not
log reads nothing; a logging step reads once (losses and gradient norms of the
steps since the last read, together); evaluation and checkpoints read only at
their intervals. Sampling: one small read per token, nothing else crosses.

On array-api-strict the arrays themselves are watched too (no_hidden_reads):
bool()/int()/float() of an array, boolean-mask indexing and data-dependent
shapes (nonzero, unique) all make a GPU wait, so they fail the test.
"""
import json

import array_api_strict
import pytest

from tinyllm import Trainer, TrainConfig
from tinyllm.cli import main
from tinyllm.models import build_model
from tinyllm.sample import generate_batch

TINY = dict(n_layer=1, n_head=2, n_embd=16, block_size=8, batch_size=4, eval_iters=2, samples=0)


@pytest.fixture
def no_hidden_reads(backend, monkeypatch):
    if backend.kind != "strict":
        yield
        return

    def refuse(name):
        def read(self, *args):
            raise AssertionError(f"a hidden device->host read: {name} of an array")
        return read

    for name in ("__bool__", "__int__", "__float__", "__index__", "__complex__"):
        monkeypatch.setattr(type(array_api_strict.asarray(0)), name, refuse(name))
    with array_api_strict.ArrayAPIStrictFlags(data_dependent_shapes=False, boolean_indexing=False):
        yield


def test_training_step_budget(backend, tmp_path, no_hidden_reads):
    B, steps = TINY["batch_size"], 12
    t = Trainer(TrainConfig(out=str(tmp_path), device=backend.name, steps=steps, eval_interval=12, log_interval=4,
                            dropout=0.1, **TINY), verbose=False).fit()
    tr = t.transfers
    step, log, ev, ck = tr["step"], tr["log"], tr["eval"], tr["checkpoint"]
    assert step["calls"] == steps
    T = TINY["block_size"]  # one copy a step: the batch's windows (B, T+1) int64, read from the shards; nothing else
    assert (step["h2d_calls"], step["h2d_bytes"]) == (steps, steps * B * (T + 1) * 8)
    assert (step["d2h_calls"], step["syncs"]) == (0, 0)  # steps wait for nothing
    assert log["calls"] == 3 and log["d2h_calls"] == 3  # steps 4, 8, 12: one read each
    assert log["d2h_bytes"] == steps * 2 * 4  # a float32 loss and gradient norm per step
    assert log["h2d_calls"] == 0
    assert ev["calls"] == 2 and ev["d2h_calls"] == 2  # at step 0 and 12: one read each
    assert ev["h2d_calls"] == 2 * 2 * TINY["eval_iters"]  # the batches of two splits
    assert ck["calls"] == 1 and ck["d2h_calls"] == 3 and ck["h2d_calls"] == 0  # flat weights, Adam's m and v
    assert len(t.losses) == steps and all(isinstance(v, float) for v in t.losses)


def test_log_interval_sets_the_reads(tmp_path):
    t = Trainer(TrainConfig(out=str(tmp_path), device="cpu", steps=10, eval_interval=10, log_interval=1, **TINY),
                verbose=False).fit()
    assert t.transfers["log"]["d2h_calls"] == 10
    t = Trainer(TrainConfig(out=str(tmp_path / "b"), device="cpu", steps=10, eval_interval=10, log_interval=100,
                            **TINY), verbose=False).fit()
    assert t.transfers["log"]["d2h_calls"] == 1  # only where it evaluates


def test_sampling_reads_one_small_array_per_token(backend, no_hidden_reads):
    m = build_model("gpt", vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=16, device=backend, seed=1)
    before = backend.stats.copy()
    rows = generate_batch(m, [1, 2, 3], 20, num_samples=3, temperature=0.9, top_k=6, top_p=0.9, seed=4)
    d = backend.stats - before
    assert [len(r) for r in rows] == [20, 20, 20]  # past block_size: the window is re-run from the device
    assert (d.h2d_calls, d.h2d_bytes) == (1, 3 * 3 * 8)  # the prompt, once
    assert (d.d2h_calls, d.d2h_bytes) == (20, 20 * 3 * 8)  # one (B,) int64 read per token
    assert d.syncs == 0


def test_train_prints_and_logs_the_counts(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--device", "cpu", "--out", str(out), "--steps", "6", "--eval-interval", "6",
                 "--log-interval", "3", "--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--block-size", "8",
                 "--batch-size", "4", "--eval-iters", "2", "--samples", "0", "--transfer-stats"])
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    head = lines.index("host <-> device on cpu (per call of each phase):")
    rows = {l.split()[0]: l for l in lines[head + 1:head + 5]}
    assert "x6" in rows["step"] and "host->device 1 copies, 288 B | device->host 0 reads" in rows["step"]  # (4, 9) int64 ids
    assert "x2" in rows["log"] and "device->host 1 reads, 24 B" in rows["log"]
    end = [json.loads(l) for l in open(out / "log.jsonl")][-1]
    assert end["event"] == "end" and end["transfers"]["step"]["d2h_calls"] == 0
