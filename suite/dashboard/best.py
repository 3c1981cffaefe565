"""The page's answer first: per workload, sweep point, profile and mode, the fastest route that passes.

Only routes whose numerics pass and that were timed compete (the latest row per cell, as everywhere on
the page): a faster route that computes the wrong thing is listed with its failure, never crowned.
Speedups are ratios of medians: over the slowest passing route, and over the winner's own framework's
baseline (:func:`eager_baseline`). A winner is a tie when another passing route's 95% CI overlaps its
own (:func:`suite.dashboard.history.ratio_verdict` with no threshold calls no difference there).
"""
from __future__ import annotations

from dataclasses import dataclass

from suite.dashboard import page
from suite.dashboard.data import FAILED, Data, first_line, fmt_time
from suite.dashboard.figures import STATUS_COLORS, _fmt_err, _num
from suite.dashboard.history import ratio_verdict

# The plain way to run a model in its framework: what the winning route is measured against.
# TensorFlow's is tf.function (this suite has no eager TensorFlow target), JAX's is jax.jit.
EAGER_BASELINES = {"torch": "torch:eager", "tensorflow": "tensorflow:function", "jax": "jax:jit"}
# a source: model's own plain run, the baseline of every route out of it (suite.sources): a Keras model's exports
# come from its TensorFlow backend; an ONNX file's plain run is ONNX Runtime; torch and flax follow their family
SOURCE_BASELINES = {"keras": "keras[tensorflow]", "onnx": "onnx>onnx@onnxruntime"}
MAX_FAILED = 8  # lines of failed routes per row (routes failing alike share one); the matrix lists every one
_GROUP = ["workload", "params", "profile", "mode"]
_COLS = _GROUP + ["cell", "target", "family", "status", "status_reason", "max_abs_err", "latency_median_s",
                  "latency_ci_low_s", "latency_ci_high_s", "unstable", "noisy", "dtype"]


def eager_baseline(target: str, family: str) -> str | None:
    """The baseline route of a target's framework, or None when the framework has none here.

    torch -> ``torch:eager``, tensorflow -> ``tensorflow:function``, jax -> ``jax:jit`` (export routes
    such as ``torch>onnx@onnxruntime`` belong to the framework that defines the model). A Keras route
    ``keras[backend]`` (or an export of one) is measured against itself: Keras has no slower plain way.
    """
    if family == "keras":
        return target.split(">", 1)[0]
    return EAGER_BASELINES.get(family)


@dataclass(frozen=True)
class Failure:
    """A route that ran here and did not pass."""

    target: str
    status: str
    detail: str  # "max abs err 5.00e-01" for a numerics failure with that figure, else the reason's first line


@dataclass(frozen=True)
class BestRoute:
    """One row of the section: a (workload, sweep point, profile, mode) and its fastest passing route."""

    workload: str
    params: str
    cell: str                    # the page's label: workload [sweep values] (+ mode when not inference)
    profile: str
    mode: str
    winner: str | None           # None when no route passed with a timing
    median_s: float | None
    ci_low_s: float | None
    ci_high_s: float | None
    unstable: bool
    noisy: bool                  # the winner was timed on a busy or unsteady host (suite.hoststate)
    dtype: str | None            # the winner's precision (a quantised route passes by its own, looser tolerance)
    ties: tuple[str, ...]        # passing routes whose CI overlaps the winner's
    slowest: str | None
    vs_slowest: float | None     # slowest passing median / winner median
    baseline: str | None         # eager_baseline of the winner
    baseline_status: str         # the baseline's status, "not run", or "none" when the framework has none
    vs_baseline: float | None    # baseline median / winner median; None unless the baseline passed timed
    n_pass: int
    failed: tuple[Failure, ...]


def _failure(r) -> Failure:
    err = _num(r.get("max_abs_err"))
    if r["status"] in ("fail", "nan", "shape_mismatch") and err is not None:
        detail = f"max abs err {_fmt_err(err)}"
    else:
        detail = first_line(r.get("status_reason"), 160)
    return Failure(str(r["target"]), str(r["status"]), detail)


def _ci(r) -> tuple:
    return _num(r.get("latency_ci_low_s")), _num(r.get("latency_ci_high_s"))


def _tied(win: dict, other: dict) -> bool:
    """Another passing route is tied with the winner when the history view would call no change between them."""
    return ratio_verdict(win["latency_median_s"], other["latency_median_s"], _ci(win), _ci(other), 0.0) == "same"


def _route(rows: list[dict]) -> BestRoute:
    """The row of one group from its cells (each a record dict of the latest row)."""
    first = rows[0]
    ok = sorted((r for r in rows if r["status"] == "pass" and (_num(r.get("latency_median_s")) or 0) > 0),
                key=lambda r: r["latency_median_s"])
    order = {s: i for i, s in enumerate(FAILED)}
    failed = tuple(_failure(r) for r in sorted((r for r in rows if r["status"] in order),
                                               key=lambda r: order[r["status"]]))
    common = dict(workload=first["workload"], params=first["params"], cell=first["cell"], profile=first["profile"],
                  mode=first["mode"], n_pass=len(ok), failed=failed)
    if not ok:
        return BestRoute(winner=None, median_s=None, ci_low_s=None, ci_high_s=None, unstable=False, noisy=False,
                         dtype=None,
                         ties=(), slowest=None, vs_slowest=None, baseline=None, baseline_status="none",
                         vs_baseline=None, **common)
    win, slow = ok[0], ok[-1]
    med = win["latency_median_s"]
    baseline = SOURCE_BASELINES.get(first.get("source")) or eager_baseline(win["target"], win["family"])
    base = next((r for r in rows if r["target"] == baseline), None)
    base_ok = next((r for r in ok if r["target"] == baseline), None)
    status = "none" if baseline is None else ("not run" if base is None else str(base["status"]))
    return BestRoute(
        winner=win["target"], median_s=med, ci_low_s=_ci(win)[0], ci_high_s=_ci(win)[1],
        unstable=win.get("unstable") is True, noisy=win.get("noisy") is True,
        dtype=win.get("dtype") if isinstance(win.get("dtype"), str) else None,
        ties=tuple(r["target"] for r in ok[1:] if _tied(win, r)), slowest=slow["target"],
        vs_slowest=slow["latency_median_s"] / med, baseline=baseline, baseline_status=status,
        vs_baseline=base_ok["latency_median_s"] / med if base_ok is not None else None, **common)


def best_routes(data: Data) -> list[BestRoute]:
    """One :class:`BestRoute` per (workload, sweep point, profile, mode) that has a passing or a failed route.

    Uses the latest row of every cell in the shown profiles (profiles not available here are left out;
    unsupported and skipped cells neither compete nor count as failures). Rows come in profile order,
    then in the page's cell order.
    """
    lat = data.latest
    lat = lat[lat["profile"].isin(data.profiles) & ~lat["profile_unavailable"]]
    groups: dict[tuple, list[dict]] = {}
    cols = _COLS + (["source"] if "source" in lat else [])  # stores written before source: workloads lack it
    for r in lat[cols].to_dict("records"):
        groups.setdefault(tuple(r[k] for k in _GROUP), []).append(r)
    rank = {p: i for i, p in enumerate(data.profiles)}
    keys = sorted(groups, key=lambda k: rank[k[2]])  # stable: the cell order of data.latest within a profile
    routes = [_route(groups[k]) for k in keys]
    return [b for b in routes if b.winner is not None or b.failed]


def _times(x) -> str:
    return "-" if x is None else f"{x:.2f}×"


def _winner_html(b: BestRoute) -> tuple[str, str]:
    if b.winner is None:
        return ("html", '<span class="bad">no route passed</span>')
    badges = ""
    if b.dtype and b.dtype != "float32":
        badges += f' <span class="badge dtype">{page.h(b.dtype)}</span>'
    if b.ties:
        badges += f' <span class="badge tie">tie with {page.h(", ".join(b.ties))}</span>'
    if b.unstable:
        badges += ' <span class="badge unstable">unstable</span>'
    if b.noisy:
        badges += ' <span class="badge unstable" title="timed while the host was busy or changing speed">noisy</span>'
    return ("html", f'<b class="winner">{page.h(b.winner)}</b>{badges}')


def _baseline_text(b: BestRoute) -> str:
    if b.winner is None:
        return "n/a"
    if b.baseline is None:
        return "n/a: no baseline for this framework"
    if b.vs_baseline is None:
        return f"n/a: {b.baseline} {b.baseline_status}"
    return f"{_times(b.vs_baseline)} vs {b.baseline}" + (" (itself)" if b.baseline == b.winner else "")


def _failed_html(b: BestRoute) -> tuple[str, str]:
    """One line per (status, detail), naming the routes that share it: compact when many fail alike."""
    if not b.failed:
        return ("html", '<span class="note">none</span>')
    lines: dict[tuple[str, str], list[str]] = {}
    for f in b.failed:
        lines.setdefault((f.status, f.detail), []).append(f.target)
    if len(lines) == 1 and b.n_pass == 0 and len(b.failed) > 2:  # the workload, not a route, is what fails
        lines = {k: [f"every route that ran ({len(b.failed)})"] for k in lines}
    items = "".join(f'<li><span class="chip"><i style="background:{STATUS_COLORS.get(st, "#999999")}"></i>'
                    f"<b>{page.h(st)}</b></span>" + (f" ({page.h(detail)})" if detail else "")
                    + f": {page.h(', '.join(targets))}</li>"
                    for (st, detail), targets in list(lines.items())[:MAX_FAILED])
    more = f"<li>and {len(lines) - MAX_FAILED} more line(s)</li>" if len(lines) > MAX_FAILED else ""
    return ("html", f'<ul class="failed">{items}{more}</ul>')


def _ci_text(b: BestRoute) -> str:
    if b.median_s is None:
        return "-"
    ci = f" ({fmt_time(b.ci_low_s)} – {fmt_time(b.ci_high_s)})" if b.ci_low_s and b.ci_high_s else ""
    return fmt_time(b.median_s) + ci


def section(data: Data) -> str:
    """The "Best route" section: a plain HTML table (readable without JavaScript), rows follow the filters."""
    routes = best_routes(data)
    note = ("Per workload, sweep point and profile: the fastest route whose numerics <b>pass</b> (latest result "
            "of each cell), its median and 95% CI, and its speedup (ratio of medians) over the slowest passing "
            "route and over its framework's baseline (torch:eager, tensorflow:function, jax:jit; a Keras route "
            "against itself; a Keras model of your own against keras[tensorflow], an ONNX file against "
            "onnx&gt;onnx@onnxruntime). <i>tie</i>: another passing route's CI overlaps the winner's; a precision other than "
            "float32 (a quantised route, judged by its own tolerance) is marked. Routes that failed are listed, "
            "never ranked. Rows follow the profile, workload and mode filters; the family filter "
            "does not re-rank them.")
    if not routes:
        return page.section("best", "Best route", '<p class="empty">No route passed or failed in the shown '
                            "profiles.</p>", note)
    rows = [[b.cell, b.profile, _winner_html(b), _ci_text(b),
             "-" if b.winner is None else f"{_times(b.vs_slowest)} vs {b.slowest}"
             + (" (only passing route)" if b.n_pass == 1 else ""),
             _baseline_text(b), _failed_html(b)] for b in routes]
    filters = [{"profile": b.profile, "workload": b.workload, "mode": b.mode} for b in routes]
    header = ["workload", "profile", "fastest passing route", "median (95% CI)", "vs slowest passing",
              "vs own baseline", "failed routes"]
    return page.section("best", "Best route", page.table(header, rows, num_cols=(3,), row_filters=filters,
                                                         table_id="best-routes"), note)
