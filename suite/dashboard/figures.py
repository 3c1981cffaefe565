"""Heatmap figures (portability matrix, speedups, profiles) and the overview's status chart.

A figure is a plain dict ``{"id", "data": [trace, ...], "layout": {...}}`` that :mod:`.page`
embeds as JSON. Every text that comes from the results is HTML-escaped here (plotly renders a
subset of HTML in labels and hover text). A trace's ``meta`` tells the page's filter script what
it belongs to: ``on`` (the trace as a whole: profile, baseline, family, workload), ``rows`` /
``cols`` (heatmap rows and columns) or ``pt`` (one entry per point).
"""
from __future__ import annotations

import html
import math

import numpy as np

from suite.dashboard.data import Data, fmt_time
from suite.sources import OTHER_KIND, not_a_route
from suite.verify import STATUSES

STATUS_COLORS = {
    "pass": "#2ca02c", "fail": "#d62728", "nan": "#9467bd", "shape_mismatch": "#e377c2",
    "error": "#ff7f0e", "unsupported": "#7f9fbf", "skipped": "#d9d9d9", "crashed": "#333333",
    "timeout": "#8c564b",
}
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173"]
FONT = {"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 12}


def esc(s) -> str:
    """Escapes text from the results for plotly labels and hover text (rendered as text, never markup)."""
    return html.escape("" if s is None else str(s), quote=False)


def target_colors(targets) -> dict[str, str]:
    return {t: PALETTE[i % len(PALETTE)] for i, t in enumerate(targets)}


def base_layout(height: int, **kw) -> dict:
    lay = {"height": int(height), "margin": {"l": 10, "r": 10, "t": 30, "b": 10}, "font": FONT,
           "paper_bgcolor": "white", "plot_bgcolor": "white", "hoverlabel": {"align": "left"}}
    lay.update(kw)
    return lay


def _num(x):
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _fmt_err(x) -> str:
    x = _num(x)
    return "-" if x is None else f"{x:.2e}"


def cell_hover(r) -> str:
    """Hover text of one matrix cell: status, latency, error figures and, for non-pass cells, the reason."""
    lines = [f"<b>{esc(r['cell'])}</b>", f"{esc(r['target'])} @{esc(r['profile'])}",
             f"status: <b>{esc(r['status'])}</b>"]
    med = _num(r.get("latency_median_s"))
    if med is not None:
        lines.append(f"median {fmt_time(med)} (95% CI {fmt_time(_num(r.get('latency_ci_low_s')))}"
                     f" – {fmt_time(_num(r.get('latency_ci_high_s')))})"
                     + (" · unstable" if r.get("unstable") is True else "")
                     + (f" · noisy: {esc(r.get('noisy_reason') or '')}" if r.get("noisy") is True else ""))
    if _num(r.get("max_abs_err")) is not None:
        lines.append(f"max abs err {_fmt_err(r.get('max_abs_err'))} · max rel err {_fmt_err(r.get('max_rel_err'))}")
        lines.append(f"cosine {_fmt_err(r.get('cosine'))} · mismatch {_fmt_err(r.get('mismatch_fraction'))}"
                     f" · rtol {_fmt_err(r.get('rtol'))} atol {_fmt_err(r.get('atol'))}")
    culprit = r.get("diagnosis_culprit")
    if isinstance(culprit, str) and culprit:
        lines.append(f"diagnosis: culprit <b>{esc(culprit)}</b> ({esc(r.get('diagnosis_op') or '')}), "
                     f"max abs err alone {_fmt_err(r.get('diagnosis_own_err'))}, "
                     f"in the graph {_fmt_err(r.get('diagnosis_inherited_err'))}")
    elif isinstance(r.get("diagnosis_summary"), str) and r.get("diagnosis_summary"):
        lines.append("diagnosis: " + esc(str(r["diagnosis_summary"])[:160]))
    reason = str(r.get("status_reason") or "").strip()
    if r["status"] != "pass" and reason:
        short = reason.splitlines()[0][:160] + ("…" if len(reason) > 160 or "\n" in reason else "")
        lines.append("reason: " + esc(short))
    return "<br>".join(lines)


CHAR_PX = 7          # width of a label character at the page's 12 px font, roughly
FLAT_LABELS_PX = 900  # column labels that need more than this side by side are drawn at an angle
LABEL_ANGLE = -45


def _heatmap_axes(n_rows: int, cols: list[str]) -> tuple[int, dict]:
    """Height and axes of a heatmap whose column labels sit on top.

    Column labels that would overlap side by side on a laptop-wide plot (~1366 px page: 20 target ids
    do) are drawn at 45°; the height grows by the room they take, so the rows keep theirs.
    """
    longest = max((len(c) for c in cols), default=0)
    angled = len(cols) * (longest + 2) * CHAR_PX > FLAT_LABELS_PX
    label_px = int(longest * CHAR_PX * 0.71) if angled else 20
    height = 110 + label_px + 26 * max(n_rows, 2)
    return height, {"margin": {"l": 10, "r": 10, "t": 30, "b": 10},
                    "xaxis": {"side": "top", "type": "category", "tickangle": LABEL_ANGLE if angled else 0,
                              "automargin": True},
                    "yaxis": {"autorange": "reversed", "type": "category", "automargin": True}}


def matrix_figure(data: Data) -> dict | None:
    """Workload x target per profile, coloured by numerics status, the median latency written in the cell."""
    traces, n_rows = [], 0
    ncolors = len(STATUSES)
    scale = []
    for i, s in enumerate(STATUSES):
        scale += [[i / ncolors, STATUS_COLORS[s]], [(i + 1) / ncolors, STATUS_COLORS[s]]]
    for prof in data.profiles:
        sub = data.latest[data.latest["profile"] == prof]
        if sub.empty:
            continue
        cells = list(dict.fromkeys(sub["cell"]))
        records = sub.to_dict("records")
        # a target that is no route of any workload shown (an ONNX-file route beside graph workloads only) gets
        # no column; where it is a route of some rows, the other rows' cells stay blank
        routes = {r["target"] for r in records if not not_a_route(r)}
        targets = [t for t in data.targets if t in routes]
        idx = {(c, t): r for c, t, r in zip(sub["cell"], sub["target"], records)}
        z, text, hover = [], [], []
        for c in cells:
            zr, tr, hr = [], [], []
            for t in targets:
                r = idx.get((c, t))
                if r is None or not_a_route(r):
                    zr.append(None), tr.append("")
                    hr.append("no result" if r is None else esc(r["status_reason"][len(OTHER_KIND):]))
                    continue
                # the middle of the status's colour band: a band's edge is shared with its neighbour's colour
                zr.append(STATUSES.index(r["status"] if r["status"] in STATUSES else "error") + 0.5)
                med = _num(r.get("latency_median_s"))
                flags = ("!" if r.get("unstable") is True else "") + ("~" if r.get("noisy") is True else "")
                tr.append(fmt_time(med) + flags if med else esc(r["status"]))
                hr.append(cell_hover(r))
            z.append(zr), text.append(tr), hover.append(hr)
        wl_of = dict(zip(sub["cell"], sub["workload"]))
        mode_of = dict(zip(sub["cell"], sub["mode"]))
        fam_of = dict(zip(sub["target"], sub["family"]))
        traces.append({
            "type": "heatmap", "x": [esc(t) for t in targets], "y": [esc(c) for c in cells], "z": z,
            "text": text, "texttemplate": "%{text}", "textfont": {"size": 11}, "hovertext": hover,
            "hovertemplate": "%{hovertext}<extra></extra>", "colorscale": scale, "zmin": 0, "zmax": ncolors,
            "showscale": False, "xgap": 2, "ygap": 2, "name": esc(prof),
            "meta": {"on": {"profile": prof}, "rows": [{"workload": wl_of[c], "mode": mode_of[c]} for c in cells],
                     "cols": [{"family": fam_of[t]} for t in targets]}})
        n_rows = max(n_rows, len(cells))
    if not traces:
        return None
    height, axes = _heatmap_axes(n_rows, data.targets)
    return {"id": "matrix", "data": traces, "layout": base_layout(height, **axes)}


SPEED_TICKS = [-3, -2, -1, 0, 1, 2, 3]


def speedup_figure(data: Data, baselines: list[str]) -> dict | None:
    """Per profile and baseline: speedup of every target per workload (baseline median / target median)."""
    traces, n_rows = [], 0
    t = data.timed
    for prof in data.profiles:
        sub = t[t["profile"] == prof]
        if sub.empty:
            continue
        cells = list(dict.fromkeys(sub["cell"]))
        targets = [x for x in data.targets if x in set(sub["target"])]
        med = {(c, x): m for c, x, m in zip(sub["cell"], sub["target"], sub["latency_median_s"])}
        wl_of = dict(zip(sub["cell"], sub["workload"]))
        mode_of = dict(zip(sub["cell"], sub["mode"]))
        fam_of = dict(zip(sub["target"], sub["family"]))
        for base in baselines:
            if base not in targets:
                continue
            z, text, hover = [], [], []
            for c in cells:
                zr, tr, hr = [], [], []
                b = med.get((c, base))
                for x in targets:
                    m = med.get((c, x))
                    if b is None or m is None:
                        zr.append(None), tr.append(""), hr.append(f"{esc(c)}<br>{esc(x)}: no timing for both")
                        continue
                    sp = b / m
                    zr.append(float(np.clip(np.log2(sp), -3.5, 3.5)))
                    tr.append(f"{sp:.2f}×")
                    word = "faster" if sp >= 1 else "slower"
                    hr.append(f"<b>{esc(c)}</b><br>{esc(x)}: {fmt_time(m)}<br>{esc(base)}: {fmt_time(b)}"
                              f"<br>{esc(x)} is {max(sp, 1 / sp):.2f}× {word} than {esc(base)}")
                z.append(zr), text.append(tr), hover.append(hr)
            traces.append({
                "type": "heatmap", "x": [esc(x) for x in targets], "y": [esc(c) for c in cells], "z": z,
                "text": text, "texttemplate": "%{text}", "textfont": {"size": 11}, "hovertext": hover,
                "hovertemplate": "%{hovertext}<extra></extra>", "colorscale": "RdBu", "reversescale": True, "zmid": 0,
                "zmin": -3.5, "zmax": 3.5, "xgap": 2, "ygap": 2,
                "colorbar": {"title": {"text": "speedup"}, "tickvals": SPEED_TICKS,
                             "ticktext": [f"{2 ** v:g}×" for v in SPEED_TICKS], "len": 0.9},
                "meta": {"on": {"profile": prof, "baseline": base},
                         "rows": [{"workload": wl_of[c], "mode": mode_of[c]} for c in cells],
                         "cols": [{"family": fam_of[x]} for x in targets]}})
            n_rows = max(n_rows, len(cells))
    if not traces:
        return None
    height, axes = _heatmap_axes(n_rows, data.targets)
    return {"id": "speedup", "data": traces, "layout": base_layout(height, **axes)}


def profiles_figure(data: Data) -> dict | None:
    """The same workload and target across hardware profiles: median latency, colour on a log scale."""
    t = data.timed
    profs = [p for p in data.profiles if p in set(t["profile"])]
    if not profs:
        return None
    rows = list(dict.fromkeys(zip(t["cell"], t["target"])))
    rows.sort(key=lambda ct: (list(dict.fromkeys(t["cell"])).index(ct[0]), data.targets.index(ct[1])))
    med = {(c, x, p): m for c, x, p, m in zip(t["cell"], t["target"], t["profile"], t["latency_median_s"])}
    wl_of = dict(zip(t["cell"], t["workload"]))
    mode_of = dict(zip(t["cell"], t["mode"]))
    fam_of = dict(zip(t["target"], t["family"]))
    z, text, hover = [], [], []
    for c, x in rows:
        ref = next((med[(c, x, p)] for p in profs if (c, x, p) in med), None)
        zr, tr, hr = [], [], []
        for p in profs:
            m = med.get((c, x, p))
            if m is None:
                zr.append(None), tr.append(""), hr.append(f"{esc(c)} · {esc(x)} @{esc(p)}: not timed")
                continue
            zr.append(math.log10(m * 1e3))
            tr.append(fmt_time(m))
            hr.append(f"<b>{esc(c)}</b><br>{esc(x)} @{esc(p)}: {fmt_time(m)}"
                      + (f"<br>{m / ref:.2f}× the time @{esc(profs[0])}" if ref else ""))
        z.append(zr), text.append(tr), hover.append(hr)
    lo = min((v for r in z for v in r if v is not None), default=0.0)
    hi = max((v for r in z for v in r if v is not None), default=1.0)
    ticks = list(range(math.floor(lo), math.ceil(hi) + 1))
    trace = {"type": "heatmap", "x": [esc(p) for p in profs], "y": [f"{esc(c)} · {esc(x)}" for c, x in rows],
             "z": z, "text": text, "texttemplate": "%{text}", "textfont": {"size": 11}, "hovertext": hover,
             "hovertemplate": "%{hovertext}<extra></extra>", "colorscale": "Viridis", "xgap": 2, "ygap": 2,
             "colorbar": {"title": {"text": "median"}, "tickvals": ticks,
                          "ticktext": [fmt_time(10.0 ** k / 1e3) for k in ticks], "len": 0.9},
             "meta": {"rows": [{"workload": wl_of[c], "family": fam_of[x], "mode": mode_of[c]} for c, x in rows]}}
    height, axes = _heatmap_axes(len(rows), profs)
    return {"id": "profiles", "data": [trace], "layout": base_layout(height, **axes)}


def status_figure(data: Data, counts) -> dict:
    """Overview: cells per status for every profile (stacked bars)."""
    profiles = list(counts.index)
    traces = []
    for s in [c for c in counts.columns if c != "total"]:
        traces.append({"type": "bar", "orientation": "h", "name": esc(s), "y": [esc(p) for p in profiles],
                       "x": [int(counts.loc[p, s]) for p in profiles],
                       "marker": {"color": STATUS_COLORS.get(s, "#999999")},
                       "hovertemplate": "%{y}: %{x} " + esc(s) + "<extra></extra>"})
    lay = base_layout(80 + 34 * len(profiles), barmode="stack",
                      yaxis={"autorange": "reversed", "type": "category", "automargin": True},
                      xaxis={"title": {"text": "cells"}, "automargin": True},
                      legend={"orientation": "h", "y": -0.25})
    lay["margin"]["b"] = 40
    return {"id": "status", "data": traces, "layout": lay}
