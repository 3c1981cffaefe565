"""HTML of the dashboard page: escaping, the JSON data block, tables and section skeletons.

Two kinds of escaping, never mixed up: :func:`h` (``html.escape``) for every text from the
results placed in HTML, and :func:`script_json` for data placed inside ``<script>``: JSON with
``<``, ``>``, ``&`` and the JS line separators written as ``\\uXXXX``, so a value containing
``</script>`` cannot close the block.
"""
from __future__ import annotations

import html
import json
import math

from suite.dashboard.figures import STATUS_COLORS

SECTIONS = [("best", "Best route"), ("overview", "Overview"), ("matrix", "Portability matrix"), ("diagnoses", "Diagnoses"),
            ("speed", "Speed"),
            ("training", "Training vs inference"), ("distributions", "Distributions"), ("scaling", "Scaling"), ("profiles", "Profiles"),
            ("roofline", "Roofline"),
            ("costs", "Costs"), ("history", "History"), ("downloads", "Downloads")]


def h(s) -> str:
    """HTML-escapes any value for text or attribute context."""
    return html.escape("" if s is None else str(s), quote=True)


def compact(obj, digits: int = 5):
    """Makes figure data JSON-ready and small: floats to ``digits`` significant digits, NaN/inf -> null."""
    if isinstance(obj, float):
        if not math.isfinite(obj):
            return None
        return float(f"{obj:.{digits}g}")
    if isinstance(obj, dict):
        return {k: compact(v, digits) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [compact(v, digits) for v in obj]
    if hasattr(obj, "tolist"):  # numpy scalars and arrays
        return compact(obj.tolist(), digits)
    return obj


def script_json(obj) -> str:
    """JSON safe to place inside a ``<script>`` element."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def table(header: list[str], rows: list[list], num_cols=(), row_filters=None, table_id: str | None = None) -> str:
    """An HTML table; every cell escaped. Cells may be ``("html", markup)`` for markup built here.

    ``row_filters``: one dict per row (profile, workload, family, mode) that the page script checks
    against the filters to hide the row, stored escaped in the row's ``data-filter`` attribute.
    """
    def cell(i, v):
        cls = ' class="num"' if i in num_cols else ""
        if isinstance(v, tuple) and len(v) == 2 and v[0] == "html":
            return f"<td{cls}>{v[1]}</td>"
        return f"<td{cls}>{h(v)}</td>"

    def tr(i):
        if row_filters is None:
            return "<tr>"
        return f'<tr data-filter="{h(json.dumps(row_filters[i], ensure_ascii=False, separators=(",", ":")))}">'
    head = "".join(f"<th>{h(c)}</th>" for c in header)
    body = "".join(tr(j) + "".join(cell(i, v) for i, v in enumerate(r)) + "</tr>" for j, r in enumerate(rows))
    tid = f' id="{h(table_id)}"' if table_id else ""
    return f"<table{tid}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def fig_div(fig_id: str) -> str:
    return f'<div class="fig" id="fig-{h(fig_id)}" data-fig="{h(fig_id)}"></div>'


def status_chips() -> str:
    return '<div class="chips">' + "".join(
        f'<span class="chip"><i style="background:{c}"></i>{h(s)}</span>' for s, c in STATUS_COLORS.items()) + "</div>"


def filters(profiles: list[str], workloads: list[str], families: list[str], default_profile: str,
            modes: list[str] = ("inference",)) -> str:
    opts = "".join(f'<option value="{h(p)}"{" selected" if p == default_profile else ""}>{h(p)}</option>'
                   for p in profiles)

    def checks(name, values, buttons=True):
        boxes = "".join(f'<label><input type="checkbox" name="{name}" value="{h(v)}" checked> {h(v)}</label>'
                        for v in values)
        if not buttons:
            return boxes
        return (boxes + f'<button type="button" data-all="{name}" data-value="1">all</button>'
                f'<button type="button" data-all="{name}" data-value="0">none</button>')

    return ('<div class="filters" id="filters">'
            f'<div class="group"><span class="label">Profile</span><select id="f-profile">{opts}</select></div>'
            f'<div class="group"><span class="label">Mode</span>{checks("f-mode", modes, buttons=False)}</div>'
            f'<div class="group"><span class="label">Workloads</span>{checks("f-workload", workloads)}</div>'
            f'<div class="group"><span class="label">Families</span>{checks("f-family", families)}</div>'
            "</div>")


def section(sid: str, title: str, body: str, note: str = "") -> str:
    note_html = f'<p class="note">{note}</p>' if note else ""
    return f'<section id="{h(sid)}"><h2>{h(title)}</h2>{note_html}{body}</section>'


def document(title: str, subtitle: str, filters_html: str, sections_html: str, spec: dict) -> str:
    """The whole page; plotly.js and the page script are files next to it (``assets/``)."""
    nav = "".join(f'<a href="#{sid}">{h(name)}</a>' for sid, name in SECTIONS)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{h(title)}</title>
<link rel="stylesheet" href="assets/style.css">
<script src="assets/plotly.min.js"></script>
</head>
<body>
<header><h1>{h(title)}</h1><p>{subtitle}</p></header>
<nav>{nav}</nav>
{filters_html}
<main>
{sections_html}
</main>
<script type="application/json" id="bench-data">{script_json(spec)}</script>
<script src="assets/dashboard.js"></script>
</body>
</html>
"""
