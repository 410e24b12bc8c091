"""Small HTML pieces of the report: escaped text, numbers, tables."""
from __future__ import annotations

import html


def esc(x) -> str:
    return html.escape(str(x))


def num(v, fmt: str = ".4g") -> str:
    return "–" if v is None else format(v, fmt) if isinstance(v, (int, float)) else esc(v)


def table(head: list, rows: list, left: int = 1) -> str:
    """An HTML table; the first `left` columns are text (left-aligned)."""
    th = "".join(f"<th class=l>{esc(h)}</th>" if k < left else f"<th>{esc(h)}</th>" for k, h in enumerate(head))
    body = "".join("<tr>" + "".join(f"<td class=l>{c}</td>" if k < left else f"<td>{c}</td>"
                                    for k, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><tr>{th}</tr>{body}</table>"
