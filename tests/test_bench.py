"""Smoke test of scripts/bench/bench.py at tiny sizes: table and JSON structure and the
correctness gate (no timing assertions: speed is reported, never asserted)."""
import json
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
BENCH = ROOT / "scripts" / "bench" / "bench.py"
TINY = ["--batch", "2", "--block", "8", "--n-layer", "1", "--n-head", "2", "--n-embd", "16",
        "--steps", "3", "--warmup", "1", "--threads", "1"]

try:
    import torch  # noqa: F401

    HAVE_TORCH = True
except ImportError:
    HAVE_TORCH = False


def _bench(*args):
    return subprocess.run([sys.executable, str(BENCH), *TINY, *args], capture_output=True, text=True, timeout=300)


def test_json_report_structure():
    p = _bench("--json", "--profile-steps", "1", "--mem-steps", "1", "--sample-tokens", "5")
    assert p.returncode == 0, p.stderr
    rep = json.loads(p.stdout)
    assert rep["preset"] == "cpu-small" and rep["steps"] == 3
    (run,) = rep["runs"]
    assert run["threads"] == 1 and run["env"]["OMP_NUM_THREADS"] == "1" and run["env"]["OPENBLAS_NUM_THREADS"] == "1"
    assert run["config"]["n_embd"] == 16 and run["config"]["block"] == 8
    tl = run["tinyllm"]
    assert tl["steps"] == 3 and tl["ms_median"] > 0 and tl["tokens_per_s"] > 0
    assert tl["memory"]["step_bytes"] >= 0
    ops = {r["op"] for r in run["profile"]}
    assert {"matmul", "self_attention", "layer_norm", "gelu", "[optimizer]"} <= ops
    m = run["machine"]
    assert m["cpu"] and all(b["internal_api"] and b["version"] for b in m["blas"])
    used = [b for b in m["blas"] if b["used"]]  # the BLAS that ran the matmuls, with its kernels named
    assert used and all(b["architecture"] for b in used)
    assert (m["mkl_not_used"] is None) == any(b["internal_api"] == "mkl" for b in used)  # MKL used, or why not
    assert run["malloc_tuned"] in (True, False) and run["policy"].startswith("1 ")
    assert rep["host_steal"] is None or 0.0 <= rep["host_steal"] <= 1.0  # None off Linux
    s = rep["sampling"]
    assert s["tokens"] == 5 and s["cache_tok_s"] > 0 and s["nocache_tok_s"] > 0
    if HAVE_TORCH:
        assert run["torch_threads"] == 1
        assert run["gate"]["ok"], run["gate"]
        assert run["gate"]["grad_rel_err"] <= 1e-4 and run["gate"]["loss_rel_err"] <= 1e-4
        assert run["torch"]["ms_median"] > 0
        assert run["ratio"] == pytest.approx(tl["ms_median"] / run["torch"]["ms_median"])
        assert rep["gate_ok"] is True
        assert run["torch_profile"]["matmul"] > 0 and "[optimizer]" in run["torch_profile"]


def test_table_without_torch():
    p = _bench("--no-torch", "--profile-steps", "1", "--mem-steps", "0", "--sample-tokens", "0")
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "tinyllm ms" in out and "per-op profile" in out and "matmul" in out
    assert "gate" not in out  # nothing to compare against
    assert "host steal during the run:" in out or not pathlib.Path("/proc/stat").exists()


def test_host_steal_is_the_steal_share_of_all_cpu_time():
    from backends.cpu.threads import steal_between

    before = [100, 0, 50, 800, 0, 0, 0, 50, 0, 0]  # user nice system idle iowait irq softirq steal guest guest_nice
    after = [300, 0, 100, 1300, 0, 0, 0, 150, 5, 0]  # +200 user, +50 system, +500 idle, +100 steal = 850
    assert steal_between(before, after) == pytest.approx(100 / 850)
    assert steal_between(None, after) is None and steal_between(before, before) is None


def test_context_sweep_reports_memory_up_to_1024():
    p = subprocess.run([sys.executable, str(BENCH), "--preset", "sweep-context", "--batch", "1", "--n-layer", "1",
                        "--n-head", "2", "--n-embd", "16", "--steps", "1", "--warmup", "1", "--threads", "1",
                        "--no-torch", "--mem-steps", "1", "--json", "--plot", "/dev/null"],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    runs = json.loads(p.stdout)["runs"]
    assert [r["config"]["block"] for r in runs] == [32, 64, 128, 256, 512, 1024]
    assert all(r["tinyllm"]["memory"]["step_bytes"] >= 0 for r in runs)


def test_bad_input_is_one_line_and_exit_2():
    p = subprocess.run([sys.executable, str(BENCH), "--threads", "0"], capture_output=True, text=True)
    assert p.returncode == 2
    assert p.stderr.strip().count("\n") == 0 and "--threads" in p.stderr


@pytest.mark.skipif(not HAVE_TORCH, reason="torch is not installed (the gate compares against PyTorch)")
def test_gate_catches_a_different_model(monkeypatch):
    """A twin whose MLP differs (exact erf GELU of 3x its input) must fail the gate."""
    monkeypatch.syspath_prepend(str(ROOT / "scripts" / "bench"))
    import bench_steps
    import bench_torch_gpt
    import torch.nn.functional as TF

    spec = dict(device="cpu", seed=0, threads=1,
                config=dict(batch=2, block=8, n_layer=1, n_head=2, n_embd=16, vocab=11, dropout=0.0, bias=False))
    assert bench_steps.correctness_gate(spec, 1e-4)["ok"]
    monkeypatch.setattr(bench_torch_gpt.MLP, "forward",
                        lambda self, x: self.drop(self.proj(TF.gelu(self.fc(x) * 3.0))))
    bad = bench_steps.correctness_gate(spec, 1e-4)
    assert not bad["ok"] and bad["grad_rel_err"] > 1e-4


def test_warmup_0_is_refused_the_first_step_is_never_timed():
    """The first step compiles (the CUDA kernels at first use, numba's loops) and allocates: never timed."""
    p = subprocess.run([sys.executable, str(BENCH), *TINY, "--warmup", "0"], capture_output=True, text=True)
    assert p.returncode == 2
    assert p.stderr.strip().count("\n") == 0 and "--warmup" in p.stderr and "never timed" in p.stderr


def test_the_timed_step_clips_as_the_trainer_does(monkeypatch):
    """The step the bench times is the trainer's: the optimizer's flat clip keeps the norm on the device,
    where the per-tensor clip_grad_norm reads it back (a wait for the device inside the timed step)."""
    monkeypatch.syspath_prepend(str(ROOT / "scripts" / "bench"))
    import bench_steps

    spec = dict(device="strict:1", seed=0, threads=1,
                config=dict(batch=2, block=8, n_layer=1, n_head=2, n_embd=16, vocab=11, dropout=0.0, bias=False))
    runner = bench_steps.TinyRunner(spec)
    (x, y), = bench_steps.make_batches(spec["config"], 1, 0)
    before = runner.backend.stats.copy()
    runner.step(x, y)
    assert (runner.backend.stats - before).d2h_calls == 1  # the loss, read after the clock stopped
