"""Builds the static dashboard site from the results store.

The site (``index.html`` + ``assets/`` + ``data/``) opens from ``file://`` or any static host:
plotly.js is written once as ``assets/plotly.min.js`` (never a CDN, never once per figure), the
figures are JSON inside the page, and the downloads are plain files. It is built in a temporary
folder next to the output and swapped in, so a failed build leaves the previous site intact.
"""
from __future__ import annotations

import datetime as _dt
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from suite.dashboard import best, charts, figures, history, page, roofline, training
from suite.dashboard.data import (FAILED, DashboardError, Data, cells_download, environment, first_line, fmt_bytes,
                                  hosts, load, status_counts)

MARKER = ".bench-dashboard"  # marks a folder as a site this module built (and may replace)
MAX_REASON_ROWS = 200


@dataclass(frozen=True)
class BuildInfo:
    index: Path
    rows: int
    runs: int
    figures: int
    seconds: float
    site_bytes: int


def _default_profile(data: Data) -> str:
    timed = set(data.timed["profile"])
    for p in data.profiles:
        if p == "cpu" and p in timed:
            return p
    return next((p for p in data.profiles if p in timed), data.profiles[0] if data.profiles else "")


def _baselines(data: Data, wanted: str | None) -> tuple[list[str], str]:
    timed = set(data.timed["target"])
    bases = [t for t in data.targets if t in timed]
    if wanted and wanted not in bases:
        raise DashboardError(f"baseline {wanted!r} has no timed cells; timed targets: {', '.join(bases) or 'none'}")
    default = wanted or ("torch:eager" if "torch:eager" in bases else (bases[0] if bases else ""))
    return bases, default


def _validate(figs: list[dict]) -> None:
    """Checks every figure against plotly's schema (a typo in a property fails the build, not the page)."""
    import plotly.graph_objects as go

    for f in figs:
        go.Figure(data=f["data"], layout=f["layout"])


def _text(value) -> str:
    """A run's optional text field for a table: "-" when missing (None, or NaN from a column pandas read)."""
    return value if isinstance(value, str) and value else "-"


def _overview(data: Data, counts) -> str:
    env = page.table(["", ""], [[k, v] for k, v in environment(data)])
    runs = data.runs.iloc[::-1].head(8)
    run_rows = [[r.run_id, r.start.strftime("%Y-%m-%d %H:%M"), _text(r.git_commit)[:10], _text(r.host),
                 int(r.rows), r.statuses] for r in runs.itertuples()]
    more = len(data.runs) - len(runs)
    runs_html = page.table(["run", "started (UTC)", "commit", "host", "rows", "statuses"], run_rows, num_cols=(4,))
    if more > 0:
        runs_html += f'<p class="note">and {more} earlier run(s).</p>'
    cols = list(counts.columns)
    count_rows = [[p] + [int(counts.loc[p, c]) for c in cols] for p in counts.index]
    unavail = "".join(f"<li><b>{page.h(p)}</b>: {page.h(why)}</li>" for p, why in data.unavailable.items())
    nodes = hosts(data)
    cols_h = ["host", "CPU", "CPU count", "python", "platform", "commit", "profiles", "cells"]
    hosts_html = ("<h3>Hosts (most recent run, one per cluster node)</h3>"
                  + page.table(cols_h, [[h[c] for c in cols_h] for h in nodes], num_cols=(2, 7))) if nodes else ""
    body = (f'<div class="grid"><div><h3>Environment (most recent run)</h3>{env}</div>'
            f"<div><h3>Runs</h3>{runs_html}</div></div>{hosts_html}"
            f"<h3>Cells by status</h3>{page.table(['profile'] + cols, count_rows, num_cols=range(1, len(cols) + 1))}"
            + page.fig_div("status")
            + (f"<h3>Profiles not available where these results were taken</h3><ul>{unavail}</ul>" if unavail else ""))
    return page.section("overview", "Overview", body, "Each cell of the matrix shows its most recent result in "
                        "the store; the history section compares runs.")


def _reasons_table(data: Data) -> str:
    bad = data.latest[(data.latest["status"] != "pass") & ~data.latest["profile_unavailable"]]
    if bad.empty:
        return '<p class="note">Every cell passed (profiles not available here are listed in the overview).</p>'
    # Failures first: a cell that computes the wrong thing matters more than one that cannot run here.
    order = {s: i for i, s in enumerate(FAILED)}
    bad = bad.assign(_o=bad["status"].map(lambda s: order.get(s, len(order)))).sort_values("_o", kind="stable")
    rows = [[r.workload, r.params_text, r.target, r.profile, r.mode, r.status, first_line(r.status_reason)]
            for r in bad.head(MAX_REASON_ROWS).itertuples()]
    more = f'<p class="note">and {len(bad) - MAX_REASON_ROWS} more.</p>' if len(bad) > MAX_REASON_ROWS else ""
    counts = bad["status"].value_counts()
    summary = ", ".join(f"{n} {s}" for s, n in counts.items())
    return (f"<details><summary><b>{len(bad)} cell(s) did not pass</b> ({page.h(summary)})</summary>"
            + page.table(["workload", "params", "target", "profile", "mode", "status", "reason"], rows) + more
            + "</details>")


def _err(v) -> str:
    return f"{v:.3g}" if isinstance(v, (int, float)) and v == v else "-"


def _diagnoses_section(data: Data, out: Path) -> str:
    """The cells diagnosed with ``--diagnose`` (suite.diagnose): culprit, errors, and a link to each bundle."""
    if "diagnosis_summary" not in data.latest:
        done = data.latest.iloc[0:0]
    else:
        done = data.latest[data.latest["diagnosis_summary"].map(lambda v: isinstance(v, str) and bool(v))]
    note = ("Where each failing cell leaves the reference (<code>bench run --diagnose</code>, <code>bench diagnose</code>): "
            "the culprit is the first node out of tolerance on its own (in train mode: from the loss back, its "
            "gradient, or the update); the bundle holds it alone with its inputs, weights, reference, the "
            "target's outputs and a README for an upstream report.")
    if done.empty:
        body = ('<p class="empty">No diagnosis stored: run with <code>--diagnose</code> to localize failing cells '
                "(or <code>bench diagnose -w W -t T</code> for one).</p>")
        return page.section("diagnoses", "Diagnoses", body, note)

    def link(bundle):
        if not isinstance(bundle, str) or not bundle:
            return "-"
        target = Path(bundle + ".zip")
        try:
            href = os.path.relpath(target, out)
        except ValueError:  # another drive
            href = target.as_uri()
        return ("html", f'<a href="{page.h(href)}">{page.h(target.name)}</a> <code>{page.h(bundle)}</code>')

    rows = [[r.workload, r.params_text, r.target, r.profile, r.mode, r.status,
             r.diagnosis_culprit if isinstance(r.diagnosis_culprit, str) else "-",
             r.diagnosis_op if isinstance(r.diagnosis_op, str) else "-",
             _err(r.diagnosis_own_err), r.diagnosis_summary, link(r.diagnosis_bundle)]
            for r in done.itertuples()]
    filters = [{"profile": r.profile, "workload": r.workload, "family": r.family, "mode": r.mode}
               for r in done.itertuples()]
    return page.section("diagnoses", "Diagnoses", page.table(
        ["workload", "params", "target", "profile", "mode", "status", "culprit", "op", "max abs err alone",
         "diagnosis", "bundle"], rows, num_cols=(8,), row_filters=filters), note)


def _history_section(h, present: bool) -> str:
    rule = h.attrs.get("rule", "")
    if not present:
        return page.section("history", "History", '<p class="empty">Only one run in the store: history appears '
                            "when results/ holds several runs (for example one per commit).</p>")
    last = h["run_id"].iloc[h["run_start"].argmax()]
    reg = h[(h["run_id"] == last) & (h["verdict"] == "regression")].sort_values("ratio_prev", ascending=False)
    if reg.empty:
        table = f'<p class="note">No regression in the most recent run ({page.h(last)}).</p>'
    else:
        rows = [[r.cell, r.target, r.profile, f"{r.ratio_prev:.2f}×"] for r in reg.head(MAX_REASON_ROWS).itertuples()]
        table = (f"<details><summary><b>{len(reg)} regression(s) in the most recent run ({page.h(last)})</b>"
                 "</summary>" + page.table(["cell", "target", "profile", "median vs previous run"], rows,
                                           num_cols=(3,)) + "</details>")
    note = (f"Median latency of each cell relative to its typical median over the last {history.MAX_RUNS} runs "
            f"at most; ▲ regression, ▼ improvement ({page.h(rule)}).")
    return page.section("history", "History", page.fig_div("history") + table, note)


def _fig_or_note(fig: dict | None, fig_id: str, why: str) -> str:
    return page.fig_div(fig_id) if fig else f'<p class="empty">{page.h(why)}</p>'


def _sections(data: Data, figs: dict, counts, h, bases: list[str], baseline: str, pairs, site_dir: Path) -> str:
    out = [best.section(data), _overview(data, counts)]  # the answer first, then how it was reached
    out.append(page.section(
        "matrix", "Portability matrix", page.status_chips() + _fig_or_note(figs.get("matrix"), "matrix",
                                                                           "No cells in the shown profiles.")
        + _reasons_table(data),
        "Workload × target, coloured by numerics status; the text is the median latency (! = unstable "
        "measurement, ~ = noisy: timed while the host was busy or changing speed) or the status when the cell was "
        "not timed. Hover for error figures, reasons and diagnoses."))
    out.append(_diagnoses_section(data, site_dir))
    opts = "".join(f'<option value="{page.h(b)}"{" selected" if b == baseline else ""}>{page.h(b)}</option>'
                   for b in bases)
    out.append(page.section(
        "speed", "Speed",
        f'<p><label><b>Baseline</b> <select id="f-baseline">{opts}</select></label></p>'
        + _fig_or_note(figs.get("speedup"), "speedup", "No timed cells.")
        + "<h3>Median latency per workload</h3>"
        + '<p class="note">Error bars: 95% confidence interval of the median; hatched bars are unstable.</p>'
        + _fig_or_note(figs.get("bars"), "bars", "No timed cells."),
        "Speedup of every target over the baseline (baseline median / target median): blue is faster."))
    out.append(training.section(data, figs, pairs))
    out.append(page.section("distributions", "Distributions", _fig_or_note(
        figs.get("distributions"), "distributions", "No raw samples stored."),
        "Per-call latency from the raw samples (their quantiles, at most 60 per cell): wide boxes are noisy cells."))
    out.append(page.section("scaling", "Scaling", _fig_or_note(
        figs.get("scaling-latency"), "scaling-latency", "No workload was timed at two batch sizes or more.")
        + (page.fig_div("scaling-throughput") if figs.get("scaling-throughput") else ""),
        "Latency and throughput against batch size, per target."))
    out.append(page.section("profiles", "Profiles", _fig_or_note(
        figs.get("profiles"), "profiles", "No timed cells."),
        "The same workload and target across hardware profiles (profiles not available here are listed "
        "in the overview). Not affected by the profile filter."))
    out.append(roofline.section(data, figs))
    out.append(page.section("costs", "Costs", _fig_or_note(
        figs.get("costs"), "costs", "No first-call, compile, export or artifact figures stored."),
        "One-off costs: first call, compile / trace and export time, exported artifact size."))
    out.append(_history_section(h, figs.get("history") is not None))
    return "\n".join(out)


def _downloads(site: Path, data: Data, h) -> str:
    d = site / "data"
    d.mkdir()
    cells = cells_download(data)
    cells.to_csv(d / "cells.csv", index=False)
    cells.to_parquet(d / "cells.parquet", index=False)
    files = [("cells", "the most recent result of every cell, inference and train (every column but the raw "
                       "samples; train cells carry the loss, gradient, parameter and step-memory columns)")]
    if h is not None and not h.empty:
        hh = h[["run_id", "run_start", "git_commit", "workload", "params", "target", "profile", "mode", "status",
                "latency_median_s", "latency_ci_low_s", "latency_ci_high_s", "unstable", "ratio_prev", "verdict"]]
        hh.to_csv(d / "history.csv", index=False, float_format="%.5g")
        hh.to_parquet(d / "history.parquet", index=False)
        files.append(("history", "median latency of every cell in every run shown, with its verdict"))
    items = "".join(
        f'<li>{page.h(desc)}: <a href="data/{n}.csv" download>{n}.csv</a> ({fmt_bytes((d / f"{n}.csv").stat().st_size)})'
        f' · <a href="data/{n}.parquet" download>{n}.parquet</a> '
        f'({fmt_bytes((d / f"{n}.parquet").stat().st_size)})</li>' for n, desc in files)
    return page.section("downloads", "Downloads", f"<ul>{items}</ul>",
                        "The data behind this page. The full store is the Parquet files under results/.")


def _replace_site(tmp: Path, out: Path) -> None:
    if out.exists():
        if any(out.iterdir()) and not (out / MARKER).exists():
            raise DashboardError(f"refusing to replace {out}: it is not a dashboard site built by bench")
        shutil.rmtree(out)
    tmp.rename(out)


def build_dashboard(results_dir, out_dir, baseline: str | None = None, max_runs: int = history.MAX_RUNS,
                    title: str = "bench-suite dashboard") -> BuildInfo:
    """Builds the site.

    Args:
        results_dir: the results folder (read through :mod:`suite.results`).
        out_dir: the site folder; replaced when it holds a site built here.
        baseline: the default baseline target of the speed view (torch:eager when timed).
        max_runs: runs drawn in the history view (the most recent).
        title: the page title.
    Returns:
        a :class:`BuildInfo` (index path, rows, runs, figures, seconds, site size).
    Raises:
        DashboardError: no results, an unknown baseline, or an output folder that is not a site.
    """
    import plotly.offline

    t0 = time.perf_counter()
    out = Path(out_dir).resolve()
    data = load(results_dir)
    counts = status_counts(data)
    h = history.history_frame(data.rows, data.profiles, max_runs)
    bases, base = _baselines(data, baseline)
    pairs = training.pairs(data)
    built = [figures.status_figure(data, counts), figures.matrix_figure(data), figures.speedup_figure(data, bases),
             charts.latency_bars(data), charts.distributions(data), charts.scaling(data, "latency"),
             charts.scaling(data, "throughput"), figures.profiles_figure(data), charts.costs(data),
             charts.history(data, h), training.comparison_figure(data, pairs),
             roofline.figure(data)]
    figs = {f["id"]: f for f in built if f is not None}
    _validate(list(figs.values()))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; a site is meant to be served
    try:
        (tmp / MARKER).write_text("built by `bench dashboard`; this folder is replaced on every build\n")
        assets = tmp / "assets"
        assets.mkdir()
        from suite.dashboard.static import SCRIPT, STYLE

        (assets / "plotly.min.js").write_text(plotly.offline.get_plotlyjs(), encoding="utf-8")
        (assets / "dashboard.js").write_text(SCRIPT, encoding="utf-8")
        (assets / "style.css").write_text(STYLE, encoding="utf-8")
        body = _sections(data, figs, counts, h, bases, base, pairs, out) + "\n" + _downloads(tmp, data, h)
        spec = {"figures": [page.compact(f) for f in figs.values()],
                "defaults": {"profile": _default_profile(data), "baseline": base},
                "workloads": data.workloads, "families": data.families, "modes": data.modes}
        now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        subtitle = (f"{len(data.rows):,} result rows · {len(data.runs)} run(s) · {len(data.latest):,} cells · "
                    f"built {now} from {page.h(Path(results_dir).resolve())}")
        html = page.document(title, subtitle, page.filters(data.profiles, data.workloads, data.families,
                                                           spec["defaults"]["profile"], data.modes), body, spec)
        (tmp / "index.html").write_text(html, encoding="utf-8")
        size = sum(p.stat().st_size for p in tmp.rglob("*") if p.is_file())
        _replace_site(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return BuildInfo(out / "index.html", len(data.rows), len(data.runs), len(figs),
                     time.perf_counter() - t0, size)
