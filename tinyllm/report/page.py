"""report.html: one self-contained page (Plotly's bundle, gzipped, and the data inside), its text readable
without JavaScript; written atomically (a temporary file in the run directory, then os.replace)."""
from __future__ import annotations

import os
import time

from . import charts
from .markup import esc, num
from .runlog import RunRecords, read_run
from .sections import learning, model_section, network_health, probes, samples

REPORT_NAME = "report.html"
STYLE = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:0 auto;padding:1em 2em;color:#222}
h1{margin-bottom:.2em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}td,th{border:1px solid #ddd;padding:.15em .5em;
text-align:right}th{background:#f4f4f4}td.l,th.l{text-align:left}.note{background:#fff4e0;padding:.4em .8em;
border-left:4px solid #e69500}.passage{font-family:monospace;font-size:1.05em;line-height:1.9;white-space:pre-wrap}
.passage span{padding:1px 0;border-radius:2px}pre{background:#f7f7f7;padding:.5em;white-space:pre-wrap}
.ok{color:#237a23}.bad{color:#b22}details{margin:.3em 0}"""


def write_report(out: str) -> tuple:
    """Write out/report.html for the run in out -> (its path, its size in bytes, the notes on what is missing)."""
    charts.plotly_lib()  # the missing extra is one line before anything is read
    run = read_run(out)
    text = build_page(run)
    path = os.path.join(out, REPORT_NAME)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        from ..errors import OutputDirError
        raise OutputDirError(f"cannot write {path}: {e.strerror or e}; check the directory's permissions "
                             f"and free space") from None
    return path, os.path.getsize(path), run.notes


def build_page(run: RunRecords) -> str:
    loaded = probes(run)  # model + data sections (and their notes) before the notes are shown
    parts = [learning(run), network_health(run), loaded["surprise"], loaded["attention"], samples(run),
             loaded["examples"], model_section(run, loaded.get("model"))]
    title = f"tinyllm report: {run.out}"
    notes = "".join(f"<p class=note>{esc(n)}</p>" for n in run.notes)
    last = run.evals[-1] if run.evals else {}
    head = (f"<h1>{esc(title)}</h1><p>step {esc(last.get('step', (run.meta or {}).get('step', '?')))} of "
            f"{esc(run.config.get('steps', '?'))} &middot; last val {num(last.get('val'))} &middot; "
            f"written {time.strftime('%Y-%m-%d %H:%M:%S')}</p>")
    nav = " &middot; ".join(f"<a href='#{k}'>{v}</a>" for k, v in (
        ("learning", "Learning"), ("health", "Network health"), ("surprise", "Surprise"), ("attention", "Attention"),
        ("samples", "Samples"), ("model", "The model")))
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{esc(title)}</title>"
            f"<style>{STYLE}</style></head><body>{head}<p>{nav}</p><noscript><p class=note>The charts need "
            f"JavaScript; the tables and text below hold the same numbers.</p></noscript>"
            f"{notes}{''.join(parts)}{charts.scripts()}</body></html>")
