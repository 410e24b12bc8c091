"""tinyllm report / info and the network health at each evaluation (issue 27)."""
import json
import os

import pytest

from tinyllm import Trainer, TrainConfig

TINY = dict(device="cpu", n_layer=2, n_head=2, n_embd=16, block_size=16, batch_size=8, eval_iters=2,
            log_interval=5)


def _evals(out):
    return [r for r in map(json.loads, open(os.path.join(out, "log.jsonl"))) if r["event"] == "eval"]


def test_eval_records_carry_health_and_samples(tmp_path):
    t = Trainer(TrainConfig(out=str(tmp_path), steps=20, eval_interval=10, samples=3, **TINY), verbose=False).fit()
    evals = _evals(tmp_path)
    assert [e["step"] for e in evals] == [0, 10, 20]
    names = [n for n, _ in t.model.named_parameters()]
    for e in evals:
        assert sorted(e["health"]) == sorted(names) and len(e["samples"]) == 3
    first, last = evals[0]["health"], evals[-1]["health"]
    assert first["wte.weight"]["grad"] is None and first["wte.weight"]["update"] is None  # nothing stepped yet
    w = t.model.wte.weight.backend.to_host(t.model.wte.weight.data)
    assert last["wte.weight"]["weight"] == pytest.approx(float((w ** 2).sum() ** 0.5), rel=1e-4)
    assert all(h["grad"] > 0 and 0 < h["update"] < 1 for n, h in last.items() if n.endswith(".weight"))
    assert t.transfers["eval"]["d2h_calls"] == 3  # the health travels in the evaluation's one read


def test_update_ratio_is_the_last_steps_update(tmp_path):
    # with plain SGD the last step's update is lr * gradient: the ratio is lr * |g| / |w_before|
    t = Trainer(TrainConfig(out=str(tmp_path), steps=4, eval_interval=4, samples=0, optimizer="sgd", beta1=0.0,
                            lr=0.1, schedule="constant", weight_decay=0.0, grad_clip=0.0, **TINY),
                verbose=False).fit()
    h = _evals(tmp_path)[-1]["health"]["blocks.0.mlp.fc.weight"]
    p = t.model.blocks[0].mlp.fc.weight
    w = p.backend.to_host(p.data)
    assert h["update"] == pytest.approx(0.1 * h["grad"] / float(((w ** 2).sum()) ** 0.5), rel=2e-2)
