"""The report's sections, each an HTML string: text and tables first (readable without JavaScript), then
the chart where there is one."""
from __future__ import annotations

from ..errors import TinyLLMError
from ..train.resume import load_trained
from . import charts, probe
from .markup import esc, num, table
from .runlog import RunRecords


def section(key: str, title: str, body: str) -> str:
    return f"<section id={key}><h2>{esc(title)}</h2>{body}</section>"


def learning(run: RunRecords) -> str:
    rows = [(num(e.get("step"), "d"), num(e.get("train")), num(e.get("val")), num(e.get("lr"), ".2e"),
             num(e.get("ms_per_step"), ".1f"), num(e.get("tok_per_s"), ",.0f")) for e in run.evals]
    body = "<p>Every evaluation (mean loss over --eval-iters batches of each split):</p>" + table(
        ["step", "train", "val", "lr", "ms / step", "tokens / s"], rows)
    if run.steps or run.evals:
        body += charts.fig_html(charts.learning_figure(run.steps, run.evals), "chart-learning")
    else:
        body += "<p>Nothing logged yet.</p>"
    return section("learning", "Learning", body)


def network_health(run: RunRecords) -> str:
    rows = [e for e in run.evals if isinstance(e.get("health"), dict)]
    if not rows:
        return section("health", "Network health", "<p>No network health in this run's log.</p>")
    last = rows[-1]
    body = (f"<p>Per parameter tensor at the last evaluation (step {esc(last['step'])}): the weight norm, the "
            f"last step's gradient norm (after clipping) and the size of that step's update relative to the "
            f"weights (around 1e-3 is a healthy rate of learning; far above, too fast; far below, stalled).</p>")
    body += "<details><summary>the numbers</summary>" + table(
        ["parameter", "weight norm", "gradient norm", "update / weight"],
        [(esc(n), num(h.get("weight")), num(h.get("grad")), num(h.get("update"), ".2e"))
         for n, h in last["health"].items()]) + "</details>"
    body += charts.fig_html(charts.health_figure(rows), "chart-health")
    return section("health", "Network health", body)


def samples(run: RunRecords) -> str:
    parts = []
    for e in run.evals:
        if e.get("samples"):
            text = "\n".join(e["samples"])
            parts.append(f"<h3>step {esc(e['step'])} (val {num(e.get('val'))})</h3><pre>{esc(text)}</pre>")
    body = "".join(parts) or "<p>No samples in this run's log (trained with --samples 0, or an older run).</p>"
    return section("samples", "Samples at each evaluation", "<p>Temperature 1.0, the run's seed.</p>" + body)


def probes(run: RunRecords) -> dict:
    """The sections that need the model (loaded on the CPU) and the validation data."""
    out = {"attention": section("attention", "Attention", "<p>No model to look at.</p>"),
           "surprise": section("surprise", "Surprise", "<p>No model to look at.</p>"), "examples": ""}
    if run.meta is None:
        run.notes.append("no checkpoint: attention, surprise and the model's parameters are left out")
        return out
    try:
        model, tok, meta = load_trained(run.out, "cpu")
    except TinyLLMError as e:
        run.notes.append(f"the model could not be loaded ({e}); attention and surprise are left out")
        return out
    out["model"] = model
    try:
        ids, ds = probe.validation_ids(meta, tok)
    except (TinyLLMError, OSError) as e:
        run.notes.append(f"the validation data could not be read ({e}); attention and surprise are left out")
        return out
    out["attention"] = attention(model, tok, ids)
    out["surprise"] = surprise(model, tok, ids)
    out["examples"] = examples(probe.dataset_examples(model, tok, meta, ds))
    return out


def attention(model, tok, ids: list) -> str:
    if not hasattr(model, "blocks"):
        return section("attention", "Attention", f"<p>A {esc(type(model).__name__)} model has no attention.</p>")
    passage = ids[:min(probe.ATTENTION_TOKENS, model.config.block_size)]
    labels = [probe.token_text(tok, i) for i in passage]
    maps = probe.attention_maps(model, passage)
    strongest = []
    for i, layer in enumerate(maps):  # in words: where the last token looks, per head
        looks = [labels[max(range(len(row)), key=row.__getitem__)] for row in (h[-1] for h in layer)]
        strongest.append((f"layer {i}", *(esc(x) for x in looks)))
    body = (f"<p>Each map: a query token (rows) attending over the tokens before it (columns), on the validation "
            f"passage <code>{esc(''.join(labels))}</code>. Without JavaScript: the token the last one attends to "
            f"most, per head:</p>" + table(["layer", *(f"head {h}" for h in range(len(maps[0])))], strongest))
    return section("attention", "Attention", body + charts.fig_html(charts.attention_figure(maps, labels),
                                                                     "chart-attention"))


def surprise(model, tok, ids: list) -> str:
    limit = model.config.block_size if hasattr(model, "blocks") else probe.SURPRISE_TOKENS
    passage = ids[:min(limit, probe.SURPRISE_TOKENS) + 1]
    if len(passage) < 2:
        return section("surprise", "Surprise", "<p>The validation passage is too short.</p>")
    scored = probe.surprise(model, passage)
    worst = max(max(s for s, _ in scored), 1e-9)
    spans = [f"<span>{esc(probe.token_text(tok, passage[0]))}</span>"]
    for t, (loss, top) in zip(passage[1:], scored):
        alpha = min(loss / worst, 1.0)
        guesses = ", ".join(f"{probe.token_text(tok, i)} {p:.2f}" for i, p in top)
        spans.append(f"<span style='background:rgba(220,40,30,{alpha:.2f})' title='loss {loss:.2f} nats; "
                     f"top 5: {esc(guesses)}'>{esc(probe.token_text(tok, t))}</span>")
    mean = sum(s for s, _ in scored) / len(scored)
    body = (f"<p>Each token of a validation passage coloured by the model's loss on it (white: expected, red: "
            f"surprised; the reddest is {worst:.2f} nats, the mean {mean:.2f}). Hover a token for its loss and the "
            f"model's five most likely guesses there.</p><div class=passage>{''.join(spans)}</div>")
    return section("surprise", "Surprise", body)


def examples(ex: dict | None) -> str:
    if not ex:
        return ""
    if ex["kind"] == "arithmetic":
        right = sum(1 for r in ex["rows"] if r[3])
        rows = [(esc(p), esc(a), esc(s), "<span class=ok>right</span>" if ok else "<span class=bad>wrong</span>")
                for p, a, s, ok in ex["rows"]]
        return section("examples", f"Held-out problems: {right} of {len(rows)} right", table(
            ["problem", "answer", "model (greedy)", ""], rows, left=4))
    new = sum(1 for _, seen in ex["rows"] if not seen)
    rows = [(esc(s), "copied from the training data" if seen else "new") for s, seen in ex["rows"]]
    return section("examples", f"Samples of the final model: {new} of {len(rows)} new", table(
        ["sample", ""], rows, left=2))


def model_section(run: RunRecords, model) -> str:
    body = ""
    if model is not None:
        params = [(esc(n), esc(" x ".join(map(str, p.shape))), f"{p.size:,}") for n, p in model.named_parameters()]
        body += (f"<p>{esc(model.describe())}: {model.num_parameters():,} parameters.</p>"
                 + table(["parameter", "shape", "count"], params))
    cfg = run.config
    if cfg:
        body += "<h3>Settings</h3>" + table(["setting", "value"], [(esc(k), esc(v)) for k, v in cfg.items()], 2)
    return section("model", "The model", body or "<p>No checkpoint or settings to show.</p>")
