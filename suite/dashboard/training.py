"""Train mode next to inference: the step-time comparison figure and the training numerics table.

A train cell (``mode == "train"``) times one optimiser step and checks its loss, gradients and
updated parameters against the float64 reference. The comparison pairs it with the inference cell
of the same workload, sweep point, target and profile; only cells where both passed are drawn as
times (a failing step's time says nothing). Same conventions as :mod:`.figures`: plain dicts,
escaped text, ``meta`` for the filter script.
"""
from __future__ import annotations

import numpy as np

from suite.dashboard import page
from suite.dashboard.charts import CAT_X, LEGEND, LOG_MS
from suite.dashboard.data import Data, first_line, fmt_bytes, fmt_time
from suite.dashboard.figures import STATUS_COLORS, base_layout, esc

MAX_ROWS = 1000  # numerics table rows (one per train cell); a note says how many more
MODE_COLORS = {"inference": "#1f77b4", "train": "#ff7f0e"}
NO_TRAIN = ("No training results yet: `bench run --mode train` (or `--mode all`) times one optimiser step per "
            "cell and checks it against the float64 reference.")
_KEY = ["workload", "params", "target", "profile"]
_PAIR_COLS = _KEY + ["params_text", "cell", "family", "latency_median_s", "latency_ci_low_s", "latency_ci_high_s"]
_TRAIN_COLS = ["status", "step_peak_bytes", "step_extra_bytes", "loss"]


def train_cells(data: Data):
    """The latest train rows in the shown profiles (profile-unavailable rows left out)."""
    lat = data.latest
    return lat[(lat["mode"] == "train") & lat["profile"].isin(data.profiles) & ~lat["profile_unavailable"]]


def pairs(data: Data):
    """Cells with both a passing, timed inference row and a passing, timed train row, in the page's order.

    Returns:
        a DataFrame with the key, the labels and ``*_inf`` / ``*_train`` latency columns, ``ratio``
        (train median / inference median) and the train row's status and step memory.
    """
    t = data.timed[data.timed["status"] == "pass"]
    inf = t[t["mode"] == "inference"][_PAIR_COLS]
    tr = t[t["mode"] == "train"][_PAIR_COLS + _TRAIN_COLS].drop(columns=["params_text", "cell", "family"])
    m = inf.merge(tr, on=_KEY, suffixes=("_inf", "_train"), how="inner", sort=False)
    return m.assign(ratio=m["latency_median_s_train"] / m["latency_median_s_inf"])


def _ms(series) -> np.ndarray:
    return series.to_numpy(float, na_value=np.nan) * 1e3


def comparison_figure(data: Data, p=None) -> dict | None:
    """Grouped bars per (workload, sweep point, target): inference median and train-step median, log ms."""
    p = pairs(data) if p is None else p
    if p.empty:
        return None
    labels = [f"{esc(c)} · {esc(t)}" for c, t in zip(p["cell"], p["target"])]
    custom = [[fmt_time(i), fmt_time(s), f"{r:.2f}", esc(st), fmt_bytes(_float(pk)), fmt_bytes(_float(ex))]
              for i, s, r, st, pk, ex in zip(p["latency_median_s_inf"], p["latency_median_s_train"], p["ratio"],
                                             p["status"], p["step_peak_bytes"], p["step_extra_bytes"])]
    p = p.assign(label=labels, custom=custom)
    hover = ("<b>%{x}</b><br>inference: %{customdata[0]}<br>train step: %{customdata[1]} "
             "(<b>%{customdata[2]}×</b> inference)<br>train status: %{customdata[3]}"
             "<br>step memory: peak %{customdata[4]} · extra %{customdata[5]}<extra>%{fullData.name}</extra>")
    traces = []
    for prof in data.profiles:
        s = p[p["profile"] == prof]
        if s.empty:
            continue
        pt = [{"workload": w, "family": f} for w, f in zip(s["workload"], s["family"])]
        for mode, sfx, name in (("inference", "_inf", "inference"), ("train", "_train", "train step")):
            med = _ms(s["latency_median_s" + sfx])
            lo, hi = _ms(s["latency_ci_low_s" + sfx]), _ms(s["latency_ci_high_s" + sfx])
            tr = {
                "type": "bar", "name": name, "x": s["label"].tolist(), "y": med.tolist(),
                "error_y": {"type": "data", "symmetric": False, "thickness": 1.2, "width": 3,
                            "array": np.nan_to_num(hi - med, nan=0.0).clip(0).tolist(),
                            "arrayminus": np.nan_to_num(med - lo, nan=0.0).clip(0).tolist()},
                "marker": {"color": MODE_COLORS[mode]}, "legendgroup": mode, "offsetgroup": mode,
                "showlegend": True, "customdata": s["custom"].tolist(), "hovertemplate": hover,
                "meta": {"on": {"profile": prof, "mode": mode}, "pt": pt}}
            if mode == "train":  # the ratio written over the train bar
                tr.update(text=[f"{r:.1f}×" for r in s["ratio"]], textposition="outside", cliponaxis=False,
                          textfont={"size": 10})
            traces.append(tr)
    lay = base_layout(480, barmode="group", yaxis={**LOG_MS, "title": {"text": "median (ms)"}}, legend=LEGEND,
                      xaxis={**CAT_X, "categoryorder": "array", "categoryarray": list(dict.fromkeys(labels))})
    return {"id": "train-vs-inference", "data": traces, "layout": lay}


def _float(x):
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if np.isfinite(x) else None


def _g(x, digits: int = 7) -> str:
    x = _float(x)
    return "-" if x is None else f"{x:.{digits}g}"


def _e(x) -> str:
    x = _float(x)
    return "-" if x is None else f"{x:.2e}"


def _status_html(status: str) -> tuple[str, str]:
    color = STATUS_COLORS.get(status, "#999999")
    return ("html", f'<span class="chip"><i style="background:{color}"></i>{page.h(status)}</span>')


def _row_filter(r) -> dict:
    return {"profile": r.profile, "workload": r.workload, "family": r.family, "mode": r.mode}


def _agreement(cells) -> str:
    """One line saying how closely the passing targets agree on each cell's first-step loss."""
    ok = cells[(cells["status"] == "pass") & cells["loss"].notna()]
    if ok.empty:
        return ""
    g = ok.groupby(["workload", "params", "profile"], sort=False)["loss"]
    multi = g.count() >= 2
    parts = [f"{len(ok)} passing train cell(s); worst |loss − reference| {_e(ok['loss_abs_err'].max())}, "
             f"worst max |gradient − reference| {_e(ok['grad_max_abs_err'].max())}, "
             f"lowest gradient cosine {_g(ok['grad_cosine'].min())}."]
    if multi.any():
        spread = (g.max() - g.min())[multi]
        parts.append(f" Where several targets trained the same cell ({int(multi.sum())} cell(s)), their first-step "
                     f"losses differ by at most {_e(spread.max())}.")
    return f'<p class="note">{page.h("".join(parts))}</p>'


def numerics_table(data: Data, cells=None) -> str:
    """Per train cell: status, loss and its error, gradient and parameter errors (escaped; filterable rows)."""
    cells = train_cells(data) if cells is None else cells
    rows, attrs = [], []
    for r in cells.head(MAX_ROWS).itertuples(index=False):
        rows.append([r.workload, r.params_text, r.target, r.profile, _status_html(str(r.status)), _g(r.loss),
                     _e(r.loss_abs_err), _e(r.grad_max_abs_err), _g(r.grad_cosine), _e(r.param_max_abs_err),
                     fmt_time(_float(r.latency_median_s)), fmt_bytes(_float(r.step_peak_bytes)),
                     fmt_bytes(_float(r.step_extra_bytes))])
        attrs.append(_row_filter(r))
    more = (f'<p class="note">and {len(cells) - MAX_ROWS} more (all in the cells download).</p>'
            if len(cells) > MAX_ROWS else "")
    header = ["workload", "params", "target", "profile", "status", "loss", "|Δloss|", "max |Δgrad|",
              "grad cosine", "max |Δparam|", "step median", "step peak mem", "step extra mem"]
    return (_agreement(cells) + page.table(header, rows, num_cols=range(5, 13), row_filters=attrs,
                                           table_id="train-numerics") + more)


def _not_passing(cells) -> str:
    bad = cells[cells["status"] != "pass"]
    if bad.empty:
        return ""
    rows = [[r.workload, r.params_text, r.target, r.profile, r.status, first_line(r.status_reason)]
            for r in bad.head(MAX_ROWS).itertuples(index=False)]
    summary = ", ".join(f"{n} {s}" for s, n in bad["status"].value_counts().items())
    return (f"<details><summary><b>{len(bad)} train cell(s) did not pass</b> ({page.h(summary)}): not drawn as "
            "times</summary>" + page.table(["workload", "params", "target", "profile", "status", "reason"], rows,
                                           row_filters=[_row_filter(r) for r in bad.head(MAX_ROWS).itertuples(
                                               index=False)]) + "</details>")


def section(data: Data, figs: dict, p=None) -> str:
    """The "Training vs inference" section: comparison figure, train cells that did not pass, numerics table."""
    cells = train_cells(data)
    note = ("One training step (forward, loss, backward, optimiser update) against one inference call of the "
            "same workload, sweep point, target and profile, both passing; the label over the train bar is "
            "train / inference. Hover for the step's memory (peak, and extra over the memory in use before it).")
    if cells.empty:
        return page.section("training", "Training vs inference", f'<p class="empty">{page.h(NO_TRAIN)}</p>', note)
    p = pairs(data) if p is None else p
    if figs.get("train-vs-inference"):
        fig = page.fig_div("train-vs-inference")
    else:
        fig = ('<p class="empty">No cell has both a passing inference result and a passing train result '
               "in the shown profiles yet.</p>")
    n_pass = int((cells["status"] == "pass").sum())
    alone = n_pass - len(p)
    lonely = (f'<p class="note">{alone} passing train cell(s) have no passing inference result to compare '
              "with.</p>" if alone > 0 else "")
    body = (fig + lonely + _not_passing(cells) + "<h3>Training numerics</h3>"
            '<p class="note">Each train cell against the float64 reference: the first step\'s loss, the worst '
            "loss error over the verified steps, the worst gradient error and lowest gradient cosine (first "
            "step), the worst updated-parameter error (last step). Rows follow the filters.</p>"
            + numerics_table(data, cells))
    return page.section("training", "Training vs inference", body, note)
