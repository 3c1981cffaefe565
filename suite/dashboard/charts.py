"""Chart figures: latency bars with confidence intervals, distributions, scaling, costs, history.

Same conventions as :mod:`.figures`: plain dicts, escaped text, ``meta`` for the filter script.
Latencies are drawn in milliseconds on log axes (targets differ by orders of magnitude).
"""
from __future__ import annotations

import json

import numpy as np

from suite.dashboard.data import Data, downsample, fmt_bytes, fmt_time
from suite.dashboard.figures import base_layout, esc, target_colors

LOG_MS = {"type": "log", "title": {"text": "latency (ms)"}, "automargin": True, "gridcolor": "#eee"}
CAT_X = {"type": "category", "automargin": True, "tickangle": -30}
LEGEND = {"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0}


def _arr(series, scale=1.0):
    return [None if v is None or not np.isfinite(v) else float(v) * scale
            for v in series.to_numpy(float, na_value=np.nan)]


def latency_bars(data: Data) -> dict | None:
    """Median latency per workload cell, one bar per target, 95% CI of the median as error bars."""
    t = data.timed
    if t.empty:
        return None
    colors = target_colors(data.targets)
    cells = [esc(c) for c in dict.fromkeys(t["cell"])]
    traces = []
    for prof in data.profiles:
        for tgt in data.targets:
            s = t[(t["profile"] == prof) & (t["target"] == tgt)]
            if s.empty:
                continue
            med = np.array(_arr(s["latency_median_s"], 1e3), dtype=float)
            lo = np.array(_arr(s["latency_ci_low_s"], 1e3), dtype=float)
            hi = np.array(_arr(s["latency_ci_high_s"], 1e3), dtype=float)
            unstable = [u is True for u in s["unstable"].tolist()]
            traces.append({
                "type": "bar", "name": esc(tgt), "x": [esc(c) for c in s["cell"]], "y": med.tolist(),
                "error_y": {"type": "data", "symmetric": False, "thickness": 1.2, "width": 3,
                            "array": np.nan_to_num(hi - med, nan=0.0).clip(0).tolist(),
                            "arrayminus": np.nan_to_num(med - lo, nan=0.0).clip(0).tolist()},
                "marker": {"color": colors[tgt], "pattern": {"shape": ["/" if u else "" for u in unstable]}},
                "legendgroup": esc(tgt), "offsetgroup": esc(tgt),
                "customdata": [[fmt_time(m / 1e3), fmt_time(a / 1e3), fmt_time(b / 1e3), "unstable" if u else ""]
                               for m, a, b, u in zip(med, lo, hi, unstable)],
                "hovertemplate": "%{x}<br>" + esc(tgt) + ": %{customdata[0]} (CI %{customdata[1]} – "
                                 "%{customdata[2]}) %{customdata[3]}<extra></extra>",
                "meta": {"on": {"profile": prof, "family": s["family"].iloc[0]},
                         "pt": [{"workload": w, "mode": m} for w, m in zip(s["workload"], s["mode"])]}})
    lay = base_layout(460, barmode="group", yaxis=LOG_MS, legend=LEGEND,
                      xaxis={**CAT_X, "categoryorder": "array", "categoryarray": cells})
    return {"id": "bars", "data": traces, "layout": lay}


def distributions(data: Data) -> dict | None:
    """Latency distributions from the raw samples (down-sampled to their quantiles), one box per cell and target."""
    t = data.timed[data.timed["samples_s"].notna()] if "samples_s" in data.timed else data.timed.iloc[0:0]
    if t.empty:
        return None
    colors = target_colors(data.targets)
    cells = [esc(c) for c in dict.fromkeys(t["cell"])]
    traces, legend_seen = [], set()
    for r in t.itertuples(index=False):
        ys = downsample(r.samples_s) * 1e3
        if ys.size == 0:
            continue
        lab = esc(r.cell)
        traces.append({
            "type": "box", "name": esc(r.target), "x": [lab] * len(ys), "y": ys.tolist(),
            "marker": {"color": colors[r.target], "size": 3}, "line": {"width": 1},
            "boxpoints": "outliers", "legendgroup": esc(r.target), "offsetgroup": esc(r.target),
            "showlegend": (r.target, r.profile) not in legend_seen,
            "hovertemplate": lab + "<br>" + esc(r.target) + ": %{y:.4g} ms<extra></extra>",
            "meta": {"on": {"profile": r.profile, "family": r.family, "workload": r.workload, "mode": r.mode}}})
        legend_seen.add((r.target, r.profile))
    if not traces:
        return None
    lay = base_layout(460, boxmode="group", yaxis=LOG_MS, legend=LEGEND,
                      xaxis={**CAT_X, "categoryorder": "array", "categoryarray": cells})
    return {"id": "distributions", "data": traces, "layout": lay}


def _facets(groups: list[str], ncols: int, title: str, ylog: bool, batches: list[int]) -> dict:
    """A grid layout with one small chart per group (axes domains computed here, no plotly import needed)."""
    n = len(groups)
    nrows = -(-n // ncols)
    height = 250 * nrows + 90
    lay = base_layout(height, legend={**LEGEND, "y": 1 + 40 / (height - 100)}, annotations=[])
    lay["margin"] = {"l": 10, "r": 10, "t": 60, "b": 10}
    gx, gy = 0.06, 0.5 / max(nrows, 1) * 0.35
    for i, g in enumerate(groups):
        r, c = divmod(i, ncols)
        x0 = c / ncols + (gx / 2 if c else 0)
        x1 = (c + 1) / ncols - (gx / 2 if c < ncols - 1 else 0)
        y1 = 1 - r / nrows - (gy if r else 0)
        y0 = 1 - (r + 1) / nrows + (gy if r < nrows - 1 else 0)
        sfx = "" if i == 0 else str(i + 1)
        lay[f"xaxis{sfx}"] = {"domain": [x0, x1], "anchor": f"y{sfx}", "type": "log", "gridcolor": "#eee",
                              "tickmode": "array", "tickvals": batches, "ticktext": [str(b) for b in batches],
                              "title": {"text": "batch"} if r == nrows - 1 else None, "automargin": True}
        lay[f"yaxis{sfx}"] = {"domain": [y0, y1 - 0.04], "anchor": f"x{sfx}", "gridcolor": "#eee",
                              "type": "log" if ylog else "linear", "automargin": True,
                              "title": {"text": title} if c == 0 else None}
        lay["annotations"].append({"text": f"<b>{g}</b>", "x": (x0 + x1) / 2, "y": y1, "xref": "paper",
                                   "yref": "paper", "showarrow": False, "yanchor": "bottom",
                                   "font": {"size": 12}})
    return lay


def scaling(data: Data, metric: str) -> dict | None:
    """Latency (``metric="latency"``) or throughput vs batch size, one small chart per workload, a line per target."""
    t = data.timed[data.timed["batch_size"].notna()]
    if t.empty:
        return None
    # One chart per workload, other sweep values and mode: a train step is not a point on the inference line.
    t = t.assign(group=[w + ("" if not o else f" [{o}]") + ("" if m == "inference" else f" {m}") for w, o, m in zip(
        t["workload"], [" ".join(f"{k}={v}" for k, v in json.loads(p).items() if k != "batch") for p in t["params"]],
        t["mode"])])
    sizes = t.groupby("group")["batch_size"].nunique()
    groups = [g for g in dict.fromkeys(t["group"]) if sizes[g] >= 2][:24]
    if not groups:
        return None
    colors = target_colors(data.targets)
    col = "latency_median_s" if metric == "latency" else "throughput"
    scale = 1e3 if metric == "latency" else 1.0
    traces, seen = [], set()
    for i, g in enumerate(groups):
        sub = t[t["group"] == g]
        sfx = "" if i == 0 else str(i + 1)
        for (prof, tgt), s in sub.groupby(["profile", "target"], sort=False):
            s = s.sort_values("batch_size")
            ys = _arr(s[col], scale)
            if all(y is None for y in ys):
                continue
            traces.append({
                "type": "scatter", "mode": "lines+markers", "name": esc(tgt), "x": [int(b) for b in s["batch_size"]],
                "y": ys, "xaxis": f"x{sfx}", "yaxis": f"y{sfx}", "line": {"color": colors[tgt]},
                "legendgroup": esc(tgt), "showlegend": (tgt, prof) not in seen,
                "hovertemplate": esc(g) + " · " + esc(tgt) + "<br>batch %{x}: %{y:.4g} "
                                 + ("ms" if metric == "latency" else "items/s") + "<extra></extra>",
                "meta": {"on": {"profile": prof, "family": s["family"].iloc[0], "workload": s["workload"].iloc[0],
                                "mode": s["mode"].iloc[0]}}})
            seen.add((tgt, prof))
    title = "latency (ms)" if metric == "latency" else "items / s"
    batches = sorted(int(b) for b in t["batch_size"].unique())
    lay = _facets([esc(g) for g in groups], min(3, len(groups)), title, ylog=True, batches=batches)
    return {"id": f"scaling-{metric}", "data": traces, "layout": lay}


COSTS = [("first_call_s", "first call (s)", 1.0), ("compile_s", "compile / trace (s)", 1.0),
         ("export_s", "export (s)", 1.0), ("artifact_bytes", "artifact size (MB)", 1 / 2**20)]


def costs(data: Data) -> dict | None:
    """First-call, compile and export time and artifact size per target (the panels that have data)."""
    shown = data.latest[data.latest["profile"].isin(data.profiles)]
    metrics = [m for m in COSTS if shown[m[0]].notna().any()]
    if not metrics:
        return None
    colors = target_colors(data.targets)
    cells = [esc(c) for c in dict.fromkeys(shown["cell"])]
    traces, seen = [], set()
    n = len(metrics)
    lay = base_layout(420, barmode="group", legend=LEGEND, annotations=[])
    for i, (col, title, scale) in enumerate(metrics):
        sfx = "" if i == 0 else str(i + 1)
        x0, x1 = i / n + (0.02 if i else 0), (i + 1) / n - (0.02 if i < n - 1 else 0)
        lay[f"xaxis{sfx}"] = {**CAT_X, "domain": [x0, x1], "anchor": f"y{sfx}", "categoryorder": "array",
                              "categoryarray": cells}
        lay[f"yaxis{sfx}"] = {"type": "log", "anchor": f"x{sfx}", "gridcolor": "#eee", "automargin": True,
                              "title": {"text": title}}
        for (prof, tgt), s in shown[shown[col].notna()].groupby(["profile", "target"], sort=False):
            vals = _arr(s[col].astype(float), scale)
            fmt = fmt_bytes if col == "artifact_bytes" else fmt_time
            traces.append({
                "type": "bar", "name": esc(tgt), "x": [esc(c) for c in s["cell"]], "y": vals,
                "xaxis": f"x{sfx}", "yaxis": f"y{sfx}", "marker": {"color": colors[tgt]},
                "legendgroup": esc(tgt), "offsetgroup": esc(tgt), "showlegend": (tgt, prof) not in seen,
                "customdata": [fmt(float(v)) for v in s[col]],
                "hovertemplate": "%{x}<br>" + esc(tgt) + f" {title.split(' (')[0]}: %{{customdata}}<extra></extra>",
                "meta": {"on": {"profile": prof, "family": s["family"].iloc[0]},
                         "pt": [{"workload": w, "mode": m} for w, m in zip(s["workload"], s["mode"])]}})
            seen.add((tgt, prof))
    return {"id": "costs", "data": traces, "layout": lay}


def history(data: Data, h) -> dict | None:
    """Median latency per cell over runs, relative to the cell's median over the runs shown; regressions marked."""
    if h is None or h.empty:
        return None
    colors = target_colors(data.targets)
    traces, seen = [], set()
    # Per point only what varies (date, median, ratio); the cell and target are in the trace's template.
    h = h.assign(x=h["run_start"].dt.strftime("%Y-%m-%d %H:%M"))
    h = h.assign(hover=[fmt_time(m) + ("" if np.isnan(q) else f" · {q:.2f}× prev")
                        for m, q in zip(h["latency_median_s"], h["ratio_prev"].astype(float))])
    for (wl, cell, tgt, prof, mode), s in h.groupby(["workload", "cell", "target", "profile", "mode"], sort=False):
        traces.append({
            "type": "scatter", "mode": "lines+markers", "name": esc(tgt),
            "x": s["x"].tolist(), "y": s["rel"].round(3).tolist(), "text": s["hover"].tolist(),
            "line": {"color": colors[tgt], "width": 1}, "marker": {"size": 4}, "opacity": 0.8,
            "legendgroup": esc(tgt), "showlegend": (tgt, prof) not in seen,
            "hovertemplate": f"<b>{esc(cell)}</b> · {esc(tgt)}<br>%{{x}}: %{{text}}<extra></extra>",
            "meta": {"on": {"profile": prof, "family": s["family"].iloc[0], "workload": wl, "mode": mode}}})
        seen.add((tgt, prof))
    for verdict, symbol, color in (("regression", "triangle-up", "#d62728"), ("improvement", "triangle-down", "#2ca02c")):
        for prof, s in h[h["verdict"] == verdict].groupby("profile", sort=False):
            text = ["<b>" + esc(c) + "</b> · " + esc(t) + "<br>run " + esc(r) + " " + esc((g if isinstance(g, str) else "")[:10])
                    + "<br>" + x for c, t, r, g, x in zip(s["cell"], s["target"], s["run_id"], s["git_commit"], s["hover"])]
            traces.append({
                "type": "scatter", "mode": "markers", "name": verdict, "x": s["x"].tolist(),
                "y": s["rel"].round(3).tolist(), "text": text,
                "marker": {"symbol": symbol, "size": 11, "color": color, "line": {"width": 1, "color": "white"}},
                "legendgroup": verdict, "hovertemplate": "%{text}<extra></extra>",
                "meta": {"on": {"profile": prof},
                         "pt": [{"workload": w, "family": f, "mode": m}
                                for w, f, m in zip(s["workload"], s["family"], s["mode"])]}})
    lay = base_layout(480, legend=LEGEND, xaxis={"type": "date", "title": {"text": "run start (UTC)"},
                                                 "gridcolor": "#eee", "automargin": True},
                      yaxis={"type": "log", "title": {"text": "median / cell's typical median"},
                             "gridcolor": "#eee", "automargin": True})
    return {"id": "history", "data": traces, "layout": lay}
