"""The roofline view: achieved FLOP/s against arithmetic intensity per profile, under the measured roofs.

Read from the stored columns only (``achieved_flops_per_s``, ``arithmetic_intensity``, ``peak_flops_per_s``,
``peak_bytes_per_s``, ``roofline_fraction``: :mod:`suite.roofline`), never from this machine's peak cache:
a site built elsewhere draws the roofs the cells were judged against. A profile whose rows carry no peak
gets no roof (a guessed roof would be a wrong one) and a note saying how to measure it.
"""
from __future__ import annotations

import numpy as np

from suite.dashboard import page
from suite.dashboard.data import Data, fmt_time
from suite.dashboard.figures import PALETTE, base_layout, esc
from suite.peak import fmt_rate

COLUMNS = ("achieved_flops_per_s", "arithmetic_intensity")
ROOF_COLOR = "#444444"
LEGEND = {"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0}


def points(data: Data):
    """Timed inference cells of the shown profiles that carry an achieved rate and an intensity."""
    t = data.timed
    if t is None or t.empty or any(c not in t for c in COLUMNS):
        return t.iloc[0:0] if t is not None else None
    ok = (t["mode"] == "inference") & t["achieved_flops_per_s"].gt(0) & t["arithmetic_intensity"].gt(0)
    return t[ok.fillna(False).astype(bool)]


def peaks(data: Data) -> dict[str, tuple[float, float, str]]:
    """profile -> (peak FLOP/s, peak bytes/s, library) of its most recent row that stores a peak."""
    lat = data.latest
    if "peak_flops_per_s" not in lat:
        return {}
    has = lat[lat["peak_flops_per_s"].gt(0).fillna(False).astype(bool)
              & lat["peak_bytes_per_s"].gt(0).fillna(False).astype(bool)]
    out = {}
    for prof, s in has.sort_values("timestamp", kind="stable").groupby("profile", sort=False):
        r = s.iloc[-1]
        out[prof] = (float(r["peak_flops_per_s"]), float(r["peak_bytes_per_s"]),
                     str(r.get("peak_flops_library") or "?"))
    return out


def figure(data: Data) -> dict | None:
    """Log-log roofline per profile: one trace per (profile, family) of cells, the two roofs as lines."""
    pts = points(data)
    if pts is None or pts.empty:
        return None
    fam_color = {f: PALETTE[i % len(PALETTE)] for i, f in enumerate(data.families)}
    roofs = peaks(data)
    traces = []
    for prof in data.profiles:
        sp = pts[pts["profile"] == prof]
        if sp.empty:
            continue
        xs = sp["arithmetic_intensity"].to_numpy(float)
        if prof in roofs:
            flops, bw, lib = roofs[prof]
            ridge = flops / bw
            lo, hi = min(xs.min(), ridge) / 4, max(xs.max(), ridge) * 4
            on = {"on": {"profile": prof}}
            traces.append({"type": "scatter", "mode": "lines", "name": "memory roof", "legendgroup": "roof-mem",
                           "showlegend": True, "x": [lo, ridge], "y": [lo * bw, flops],
                           "line": {"color": ROOF_COLOR, "dash": "dash", "width": 2},
                           "hovertemplate": f"memory roof @{esc(prof)}: {esc(fmt_rate(bw, 'B/s'))} × intensity"
                                            "<extra></extra>", "meta": on})
            traces.append({"type": "scatter", "mode": "lines", "name": "compute roof", "legendgroup": "roof-flops",
                           "showlegend": True, "x": [ridge, hi], "y": [flops, flops],
                           "line": {"color": ROOF_COLOR, "width": 2},
                           "hovertemplate": f"compute roof @{esc(prof)}: {esc(fmt_rate(flops, 'FLOP/s'))} "
                                            f"({esc(lib)} GEMM)<extra></extra>", "meta": on})
        for fam, s in sp.groupby("family", sort=False):
            frac = s["roofline_fraction"].to_numpy(float, na_value=np.nan) if "roofline_fraction" in s \
                else np.full(len(s), np.nan)
            text = [f"<b>{esc(c)}</b><br>{esc(t)} @{esc(prof)}<br>median {fmt_time(m)}<br>"
                    f"{esc(fmt_rate(a, 'FLOP/s'))} at {i:.3g} FLOP/byte<br>"
                    + (f"roofline fraction {f:.1%}" if np.isfinite(f) else "no peak: run `bench peak -p "
                       + esc(prof) + "`")
                    for c, t, m, a, i, f in zip(s["cell"], s["target"], s["latency_median_s"].astype(float),
                                                s["achieved_flops_per_s"].astype(float),
                                                s["arithmetic_intensity"].astype(float), frac)]
            traces.append({"type": "scatter", "mode": "markers", "name": esc(fam), "legendgroup": esc(fam),
                           "showlegend": True, "x": s["arithmetic_intensity"].astype(float).tolist(),
                           "y": s["achieved_flops_per_s"].astype(float).tolist(), "text": text,
                           "marker": {"color": fam_color.get(fam, "#999999"), "size": 9, "opacity": 0.85,
                                      "line": {"width": 1, "color": "white"}},
                           "hovertemplate": "%{text}<extra></extra>",
                           "meta": {"on": {"profile": prof, "family": fam},
                                    "pt": [{"workload": w, "mode": m} for w, m in zip(s["workload"], s["mode"])]}})
    ys = [y for t in traces for y in t["y"] if y and y > 0]
    lay = base_layout(480, legend=LEGEND,
                      xaxis={"type": "log", "title": {"text": "arithmetic intensity (FLOP/byte)"},
                             "gridcolor": "#eee", "automargin": True},
                      yaxis={"type": "log", "title": {"text": "FLOP/s"}, "gridcolor": "#eee", "automargin": True,
                             "exponentformat": "SI",  # 10G, not plotly's default 10B
                             # headroom above the compute roof, so the ceiling is not drawn on the frame
                             "range": [float(np.log10(min(ys))) - 0.3, float(np.log10(max(ys))) + 0.3]})
    return {"id": "roofline", "data": traces, "layout": lay}


def section(data: Data, figs: dict) -> str:
    """The section: the chart, then one row per profile with its roofs or how to measure them."""
    pts = points(data)
    roofs = peaks(data)
    with_points = [] if pts is None else list(dict.fromkeys(pts["profile"]))
    rows, filters = [], []
    for prof in data.profiles:
        if prof in roofs:
            flops, bw, lib = roofs[prof]
            rows.append([prof, fmt_rate(flops, "FLOP/s"), lib, fmt_rate(bw, "B/s"), f"{flops / bw:.3g}"])
        elif prof in with_points:
            rows.append([prof, ("html", f'<span class="note">no peak measured for this profile: run '
                                        f"<code>bench peak -p {page.h(prof)}</code>, then <code>bench run</code> "
                                        "again</span>"), "-", "-", "-"])
        else:
            continue
        filters.append({"profile": prof})
    if figs.get("roofline"):
        body = page.fig_div("roofline")
    else:
        body = ('<p class="empty">No timed inference cell carries roofline columns (rows written before they '
                "existed, or nothing timed yet): run <code>bench run</code>.</p>")
    if rows:
        body += page.table(["profile", "peak compute", "GEMM library", "peak bandwidth", "ridge (FLOP/byte)"],
                           rows, num_cols=(1, 3, 4), row_filters=filters, table_id="roofline-peaks")
    note = ("Each timed inference cell at its arithmetic intensity (FLOPs over the bytes of parameters, inputs and "
            "every node's output at the cell's dtype, each counted once) and its achieved FLOP/s (FLOPs / median). "
            "Roofs: the profile's peak float32 GEMM rate (best library, <code>bench peak</code>) and its copy "
            "bandwidth × intensity. Caches let small models sit above the DRAM roof; int8 routes are drawn "
            "against the float32 roof. Colour: target family; hover for the fraction of the roof.")
    return page.section("roofline", "Roofline", body, note)
