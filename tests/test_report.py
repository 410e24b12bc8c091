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


# -- tinyllm report / info -----------------------------------------------------------------------------------

import re  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402

from tinyllm.cli import main  # noqa: E402

pytest.importorskip("plotly", reason="the report extra (plotly) is not installed")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SECTIONS = ("Learning", "Network health", "Surprise", "Attention", "Samples at each evaluation", "The model")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "r"
    Trainer(TrainConfig(out=str(out), steps=20, eval_interval=10, samples=3, **TINY), verbose=False).fit()
    return out


@pytest.fixture(scope="module")
def report(run_dir):
    assert main(["report", "--out", str(run_dir)]) == 0
    return run_dir / "report.html"


def test_report_is_one_self_contained_file(report, run_dir):
    import base64
    import gzip

    text = report.read_text(encoding="utf-8")
    assert report.stat().st_size < 3e6  # Plotly's 4.8 MB bundle travels gzipped: about 2 MB
    packed = re.search(r"<script id=plotly-gz type=application/octet-stream>([^<]*)</script>", text)
    bundle = gzip.decompress(base64.b64decode(packed.group(1))).decode("utf-8")
    assert "Plotly" in bundle and len(bundle) > 2 * len(packed.group(1))
    page = text[:packed.start()] + text[packed.end():]  # the page outside Plotly's own bundle
    assert len(re.findall(r"<script[^>]*>", text)) == 5 and not re.search(r"<script[^>]+src=|<link|https?://", page)
    for title in SECTIONS:
        assert f"<h2>{title}</h2>" in text
    charts = re.findall(r'<script type="application/json" data-chart="(chart-[a-z]+)">', text)
    assert charts == ["chart-learning", "chart-health", "chart-attention"] and "DecompressionStream" in page
    assert sorted(os.listdir(run_dir)) == sorted(f for f in os.listdir(run_dir) if not f.startswith("report.html.tmp"))


def test_attention_maps_match_the_models_attention(run_dir):
    from tinyllm.autograd import no_grad
    from tinyllm.report import probe
    from tinyllm.train.resume import load_trained

    model, tok, meta = load_trained(str(run_dir), "cpu")
    ids, _ = probe.validation_ids(meta, tok)
    ids = ids[:12]
    maps = probe.attention_maps(model, ids)
    be = model.wte.weight.backend
    assert len(maps) == 2 and len(maps[0]) == 2 and len(maps[0][0]) == 12
    for row_i, row in enumerate(maps[1][0]):
        assert sum(row) == pytest.approx(1.0, abs=1e-5) and all(v == 0 for v in row[row_i + 1:])  # causal
    # the maps times the values give what the block's attention computes
    with no_grad():
        x = probe._embed(model, ids)
        blk = model.blocks[0]
        h = blk.ln1(x)
        qkv = be.to_host(blk.attn.qkv(h).data)[0]
        want = be.to_host(blk.attn(h).data)[0]
    import numpy as np  # tests may use NumPy
    v = qkv[:, 32:].reshape(12, 2, 8)
    y = np.stack([np.array(maps[0][k]) @ v[:, k, :] for k in range(2)], axis=1).reshape(12, 16)
    got = y @ be.to_host(blk.attn.proj.weight.data) + be.to_host(blk.attn.proj.bias.data)
    assert np.allclose(got, want, atol=1e-5)


def test_info_says_step_val_settings_files(run_dir, capsys):
    assert main(["info", "--out", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "step 20/20" in out and "val loss: last" in out and "best" in out
    assert "n_layer=2" in out and "steps=20" in out and "data=" not in out  # only what differs from the defaults
    assert "checkpoint.json" in out and f"tinyllm sample --out {run_dir}" in out and len(out.splitlines()) <= 8


@pytest.mark.parametrize("cmd", ["report", "info"])
def test_not_a_run_is_one_line_and_writes_nothing(tmp_path, capsys, cmd):
    empty = tmp_path / "empty"
    empty.mkdir()
    for where in (empty, tmp_path / "missing"):
        assert main([cmd, "--out", str(where)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "Traceback" not in err and str(where) in err
    assert os.listdir(empty) == [] and not (tmp_path / "missing").exists()


def test_log_without_checkpoint_gives_a_partial_report(run_dir, tmp_path, capsys):
    part = tmp_path / "part"
    part.mkdir()
    lines = open(run_dir / "log.jsonl").read().splitlines()
    (part / "log.jsonl").write_text("\n".join(lines[:6]) + "\n" + lines[6][:20])  # torn last line: still writing
    assert main(["report", "--out", str(part)]) == 0
    text = (part / "report.html").read_text()
    assert "no checkpoint" in text and "could not be read" in text and "<h2>Learning</h2>" in text
    assert sorted(os.listdir(part)) == ["log.jsonl", "report.html"]


def test_older_layout_without_log_uses_the_checkpoint(run_dir, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(run_dir, old)
    os.remove(old / "log.jsonl")
    os.remove(old / "report.html") if (old / "report.html").exists() else None
    assert main(["report", "--out", str(old)]) == 0
    text = (old / "report.html").read_text()
    assert "older layout" in text and 'data-chart="chart-learning"' in text and "No network health" in text


def test_report_of_a_run_still_training_is_written_and_says_so(run_dir, tmp_path, capsys):
    from tinyllm.train.lock import RunLock

    live = tmp_path / "live"
    shutil.copytree(run_dir, live)
    os.remove(live / "report.html") if (live / "report.html").exists() else None
    before = sorted(os.listdir(live))
    with RunLock(str(live)):  # a training run holds the directory, as tinyllm train's does
        assert main(["report", "--out", str(live)]) == 0
        assert sorted(os.listdir(live)) == sorted(before + ["report.html", ".tinyllm-lock"])
    assert "note: a run is training in this directory now" in capsys.readouterr().err
    text = (live / "report.html").read_text(encoding="utf-8")
    assert "<p class=note>a run is training in this directory now" in text
    assert "<h2>Learning</h2>" in text and 'data-chart="chart-attention"' in text  # the page is whole all the same


# -- tinyllm train --report ----------------------------------------------------------------------------------

TRAINING_NOW = "a run is training in this directory now"


def _page_step(out) -> int:
    return int(re.search(r"<p>step (\d+) of", (out / "report.html").read_text(encoding="utf-8")).group(1))


def test_report_refreshes_at_every_evaluation_then_once_more(tmp_path):
    from tinyllm.report.live import reporting

    out = tmp_path / "r"
    t = Trainer(TrainConfig(out=str(out), steps=15, eval_interval=5, samples=1, **TINY), verbose=False)
    seen = []  # what the page said right after each evaluation's refresh, and the directory's files
    with reporting(t) as hook:
        t.after_eval.append(lambda tr: seen.append((_page_step(out), TRAINING_NOW in (out / "report.html")
                                                    .read_text(encoding="utf-8"), sorted(os.listdir(out)))))
        t.fit()
    # the last evaluation's page is written once, when fit has ended (and the page no longer says training)
    assert [(step, live) for step, live, _ in seen] == [(5, True), (10, True), (10, True)]
    assert [s for s in seen[0][2] if "report" in s] == ["report.html"]  # written whole: no temporary left
    assert hook.written == 3 and hook not in t.after_eval  # 5, 10 and the end; the hook is taken off after
    text = (out / "report.html").read_text(encoding="utf-8")
    assert _page_step(out) == 15 and TRAINING_NOW not in text and text.count("<h3>step ") == 4  # 0, 5, 10, 15


def test_train_report_flag(tmp_path, capsys):
    tiny = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "16", "--batch-size", "4",
            "--eval-iters", "1", "--steps", "6", "--eval-interval", "3", "--device", "cpu"]
    assert main(["train", "--out", str(tmp_path / "off"), *tiny]) == 0
    assert not (tmp_path / "off" / "report.html").exists()  # only with --report
    capsys.readouterr()
    assert main(["train", "--out", str(tmp_path / "on"), "--report", *tiny]) == 0
    assert _page_step(tmp_path / "on") == 6 and not [f for f in os.listdir(tmp_path / "on") if ".tmp" in f]
    assert capsys.readouterr().out.splitlines()[-1].startswith(f"report: {tmp_path / 'on' / 'report.html'} (")
    meta = json.loads(open(tmp_path / "on" / "checkpoint.json").read())["meta"]
    assert "report" not in meta["train"]  # an output option, not a setting of the run


def test_train_report_without_plotly_stops_before_anything(tmp_path, monkeypatch, capsys):
    import sys
    monkeypatch.setitem(sys.modules, "plotly", None)
    assert main(["train", "--out", str(tmp_path / "r"), "--steps", "2", "--report"]) == 2
    err = capsys.readouterr().err.strip()
    assert "tinyllm[report]" in err and len(err.splitlines()) == 1 and not (tmp_path / "r").exists()


def test_report_without_plotly_names_the_extra(run_dir, tmp_path, monkeypatch, capsys):
    import sys
    monkeypatch.setitem(sys.modules, "plotly", None)
    assert main(["report", "--out", str(run_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert "tinyllm[report]" in err and len(err.splitlines()) == 1


# -- in a real browser ---------------------------------------------------------------------------------------

def _chromium(url: str, *flags) -> str:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run installs it)")
    with tempfile.TemporaryDirectory() as profile:
        r = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                            "--disable-component-update", "--disable-sync", "--no-first-run",
                            f"--user-data-dir={profile}", "--virtual-time-budget=20000", *flags, "--dump-dom", url],
                           capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


def test_every_chart_draws_in_chromium(report):
    dom = _chromium(report.as_uri())
    charts = re.findall(r'<div id="(chart-[a-z]+)" class="[^"]*js-plotly-plot', dom)
    assert sorted(charts) == ["chart-attention", "chart-health", "chart-learning"]
    assert dom.count('class="main-svg"') >= 6  # Plotly drew (two svg layers a chart)


def test_text_is_readable_without_javascript(report, tmp_path):
    # --blink-settings=scriptEnabled=false leaves --dump-dom empty (the dump itself needs script), so the
    # page's scripts are blocked the way a browser with JavaScript off would: a copy under a CSP of script-src 'none'
    nojs = tmp_path / "nojs.html"
    csp = "<meta http-equiv=\"Content-Security-Policy\" content=\"script-src 'none'\">"
    nojs.write_text(report.read_text(encoding="utf-8").replace("<head>", "<head>" + csp, 1), encoding="utf-8")
    dom = _chromium(nojs.as_uri())
    assert not re.search(r'class="[^"]*js-plotly-plot|class="main-svg"', dom)  # no script ran
    for title in SECTIONS:
        assert f"<h2>{title}</h2>" in dom
    assert re.search(r'<td class="l">10</td><td>\d\.\d+</td><td>\d\.\d+</td>', dom)  # the evaluations' table
    assert re.search(r'<span style="background:rgba[^"]*" title="loss \d', dom)  # surprise: each token's loss
    assert "<pre>" in dom  # samples
