"""The report's charts: Plotly figures, each an empty <div> and its figure as JSON in a data block; Plotly's
offline bundle is embedded once, gzipped (2 MB of page instead of 5), and unpacked in the browser, which then
draws every chart (LOADER). plotly is the optional `report` extra."""
from __future__ import annotations

import base64
import functools
import gzip
import json

from ..errors import UsageError

INSTALL = "the report's charts need plotly: pip install 'tinyllm[report]' (or: pip install plotly)"


def plotly_lib():
    try:
        import plotly  # noqa: F401
        import plotly.graph_objects  # noqa: F401
        import plotly.io  # noqa: F401
        import plotly.offline  # noqa: F401
        import plotly.subplots  # noqa: F401
    except ImportError:
        raise UsageError(INSTALL) from None
    return plotly


@functools.lru_cache(maxsize=1)  # train --report writes the page at every evaluation: compress once
def plotly_js_gzip_base64() -> str:
    """Plotly's bundle (4.8 MB of JavaScript), gzipped and base64-encoded: 2 MB."""
    return base64.b64encode(gzip.compress(plotly_lib().offline.get_plotlyjs().encode("utf-8"), 9,
                                          mtime=0)).decode("ascii")


CHART_CONFIG = {"displaylogo": False, "responsive": True}
# Run after the page is parsed: unpack the bundle with the browser's own gzip (DecompressionStream: Chromium 80+,
# Firefox 113+, Safari 16.4+), run it, then draw each chart from its JSON block; a browser without it is told so.
LOADER = """(async () => {
  const cfg = %s;
  try {
    const bytes = Uint8Array.from(atob(document.getElementById("plotly-gz").textContent), c => c.charCodeAt(0));
    const unzip = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    const lib = document.createElement("script");
    lib.textContent = "window.PlotlyConfig = {MathJaxConfig: 'local'};\\n" + await new Response(unzip).text();
    document.head.appendChild(lib);
    for (const block of document.querySelectorAll("script[data-chart]")) {
      const fig = JSON.parse(block.textContent);
      await Plotly.newPlot(block.dataset.chart, fig.data, fig.layout, cfg);
    }
  } catch (e) {
    const note = document.createElement("p");
    note.className = "note";
    note.textContent = "The charts could not be drawn (" + e + "): this page needs a browser with " +
      "DecompressionStream (Chromium 80+, Firefox 113+, Safari 16.4+). The tables and text hold the same numbers.";
    document.body.insertBefore(note, document.body.firstChild);
  }
})();""" % json.dumps(CHART_CONFIG)


def scripts() -> str:
    """The bundle (a data block: never run as it is) and the loader, for the end of the page's body."""
    return (f"<script id=plotly-gz type=application/octet-stream>{plotly_js_gzip_base64()}</script>"
            f"<script>{LOADER}</script>")


def fig_html(fig, div_id: str) -> str:
    """The chart's <div> and its figure as a JSON data block (drawn by LOADER). Plotly's JSON writes < and /
    as \\u escapes, so no text in the data (a token, a sample) can close the block."""
    fig.update_layout(template="plotly_white", margin=dict(l=60, r=20, t=50, b=40))
    data = plotly_lib().io.to_json(fig, validate=False)
    height = fig.layout.height or 450
    return (f'<div id="{div_id}" class="plotly-graph-div" style="height:{height}px; width:100%;"></div>'
            f'<script type="application/json" data-chart="{div_id}">{data}</script>')


def smooth(values: list, beta: float = 0.9) -> list:
    """An exponential moving average with bias correction (None values are carried over)."""
    out, avg, n = [], 0.0, 0
    for v in values:
        if v is not None:
            n += 1
            avg = beta * avg + (1 - beta) * v
        out.append(avg / (1 - beta ** n) if n else None)
    return out


def learning_figure(steps: list, evals: list):
    """Loss (raw, smoothed, val), lr, gradient norm, tokens/s and elapsed time against the step."""
    pl = plotly_lib()
    go = pl.graph_objects
    fig = pl.subplots.make_subplots(rows=2, cols=3, subplot_titles=(
        "loss", "learning rate", "gradient norm (before clipping)", "tokens / s", "elapsed (s)", ""),
        vertical_spacing=0.14, horizontal_spacing=0.06)
    xs = [r.get("step") for r in steps]
    loss = [r.get("loss") for r in steps]
    fig.add_trace(go.Scatter(x=xs, y=loss, name="train (logged steps)", line=dict(color="#9ecae1", width=1)), 1, 1)
    fig.add_trace(go.Scatter(x=xs, y=smooth(loss), name="train, smoothed", line=dict(color="#08519c")), 1, 1)
    ex = [e.get("step") for e in evals]
    fig.add_trace(go.Scatter(x=ex, y=[e.get("val") for e in evals], name="val (each evaluation)",
                             mode="lines+markers", line=dict(color="#d94801")), 1, 1)
    for (row, col), key in (((1, 2), "lr"), ((1, 3), "grad_norm"), ((2, 1), "tok_per_s"), ((2, 2), "elapsed")):
        ys = [r.get(key) for r in steps]
        if any(y is not None for y in ys):
            fig.add_trace(go.Scatter(x=xs, y=ys, name=key, showlegend=False), row, col)
    fig.update_xaxes(title_text="step", row=2)
    fig.update_layout(height=540, legend=dict(x=0.70, y=0.35))
    return fig


def health_figure(evals: list):
    """Per parameter tensor over the evaluations: weight norm, gradient norm, update / weight (log scale).
    Matrices are shown; biases and norm gains are one click away in the legend."""
    pl = plotly_lib()
    go = pl.graph_objects
    rows = [e for e in evals if isinstance(e.get("health"), dict)]
    fig = pl.subplots.make_subplots(rows=1, cols=3, horizontal_spacing=0.06, subplot_titles=(
        "weight norm", "gradient norm (last step, after clipping)", "update / weight (last step)"))
    names = list(rows[-1]["health"]) if rows else []
    for k, name in enumerate(names):
        shown = True if _is_matrix(name) else "legendonly"
        for r, key in enumerate(("weight", "grad", "update"), start=1):
            ys = [(e["health"].get(name) or {}).get(key) for e in rows]
            fig.add_trace(go.Scatter(x=[e["step"] for e in rows], y=ys, name=name, legendgroup=name,
                                     showlegend=r == 1, visible=shown, mode="lines+markers",
                                     line=dict(color=_color(k))), 1, r)
    fig.update_yaxes(type="log", row=1, col=3)
    fig.update_xaxes(title_text="step")
    fig.update_layout(height=420, legend=dict(font=dict(size=9)))
    return fig


def _is_matrix(name: str) -> bool:
    leaf = name.rsplit(".", 2)
    return name.endswith(".weight") and not any(p.startswith("ln") for p in leaf[:-1])


def _color(k: int) -> str:
    palette = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
               "#bcbd22", "#17becf")
    return palette[k % len(palette)]


def attention_figure(maps: list, labels: list):
    """One heatmap per layer (rows) and head (columns): query token (y) over key token (x)."""
    pl = plotly_lib()
    go = pl.graph_objects
    n_layer, n_head = len(maps), len(maps[0])
    fig = pl.subplots.make_subplots(rows=n_layer, cols=n_head, horizontal_spacing=0.03, vertical_spacing=0.05,
                                    subplot_titles=[f"layer {i} head {h}" for i in range(n_layer)
                                                    for h in range(n_head)])
    ticks = dict(tickmode="array", tickvals=list(range(len(labels))), ticktext=labels, tickfont=dict(size=8))
    for i in range(n_layer):
        for h in range(n_head):
            z = [[round(v, 4) for v in row] for row in maps[i][h]]
            fig.add_trace(go.Heatmap(z=z, coloraxis="coloraxis",
                                     hovertemplate="query %{y}<br>key %{x}<br>%{z:.3f}<extra></extra>"), i + 1, h + 1)
    fig.update_xaxes(**ticks)
    fig.update_yaxes(autorange="reversed", **ticks)
    fig.update_layout(height=max(300, 230 * n_layer), coloraxis=dict(colorscale="Blues", cmin=0, cmax=1),
                      margin=dict(t=40))
    return fig
