"""`bench compare BASE NEW`: regression verdicts between two runs, cell by cell.

Per cell present in both runs (matched on :func:`suite.results.cell_key`):

- **numerics first**: a cell that passed in BASE and does not pass in NEW (fail, nan, shape_mismatch,
  error, crashed, timeout) is a regression whatever its speed; the reverse is an improvement.
- **speed** (both timed): ``ratio`` = NEW median / BASE median (the engine's medians), and a two-sided
  Mann-Whitney U test on the raw ``samples_s`` of both cells. Regression when ``ratio > factor`` and
  ``p < alpha``; improvement when ``ratio < 1 / factor`` and ``p < alpha``; unchanged otherwise.

Why both conditions: samples of two runs come from two processes, and a few-percent shift between
processes (memory layout, frequency, neighbours) is real but not a code change. With hundreds of
samples the U test finds such shifts "significant", so significance alone flags A/A pairs; the factor
says how large a change must be to matter, the test says whether it is more than noise within a run.
The defaults (1.10, 0.01) match the engine's ``unstable_threshold``: below 10% a comparison is not
reliable on a noisy host (``tests/benchmarks/compare_sensitivity.py`` measures what is detected here).

**Run-to-run spread** (:func:`run_spread`): the U test only sees the noise *within* a run. Between two
runs a whole process can land at another speed (thread placement, the VM's neighbours, memory layout),
and on a shared host that shift is far larger than 10%: two back-to-back default runs of the 2-thread
``cpu`` profile on a 2-core VM put 75 clean cells at ratios from 0.43 to 2.6 (robust spread ±24%), and
the factor-and-test rule called 49 of them changed. So the pair measures its own between-run noise:
per profile, over the cells timed cleanly in both runs (at least ``MIN_SPREAD_CELLS``), the spread is
the length of the shortest interval holding half the cells' log(ratio) over 1.349 (a standard deviation
for Gaussian noise, robust to the cells that really changed, even a block of half of them:
:func:`shorth_sigma`). A speed verdict then needs ``|log ratio| > max(log factor, noise_k × spread)``
(``noise_k`` = 4 by default: run-to-run ratios have heavy tails; on that A/A pair 4 of the 75 clean
cells lay beyond 3 spreads and none beyond 3.5); the header states each profile's spread and the
smallest change it can call. Ratios are judged against 1,
not against the median ratio, so a change that slows every cell alike is still a regression of every
cell. With fewer cells than ``MIN_SPREAD_CELLS`` the spread cannot be estimated and the factor alone
applies (the header says so).

Cells in only one run, or not timed in both (skipped, unsupported), are ``not comparable``: listed,
never a regression. So is a cell that is ``noisy`` in either run (timed while the host was busy or
changing speed: :mod:`suite.hoststate`): its ratio is shown, with the reason, but a busy host must
never produce a believable regression. When the two runs differ in host state (how busy the host was
at their start, their share of noisy cells, the host itself, the CPU frequency), the report's header
says so (:func:`host_state_note`).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable

from suite.results import cell_key

DEFAULT_FACTOR = 1.10
DEFAULT_ALPHA = 0.01
DEFAULT_NOISE_K = 4.0
MIN_SPREAD_CELLS = 8
FORMATS = ("table", "markdown", "json")

# Statuses that carry no verdict about the code: the cell did not run here.
_NOT_RUN = ("skipped", "unsupported")
_ORDER = {"regression": 0, "improvement": 1, "unchanged": 2, "not comparable": 3}


def mann_whitney_p(base: Iterable[float], new: Iterable[float]) -> float:
    """Two-sided Mann-Whitney U p-value of two sample sets (1.0 when either has < 2 values).

    Args:
        base, new: raw per-call seconds.
    Returns:
        the p-value.
    """
    from scipy.stats import mannwhitneyu

    a, b = [float(x) for x in base], [float(x) for x in new]
    if len(a) < 2 or len(b) < 2:
        return 1.0
    if min(a) == max(a) == min(b) == max(b):  # identical constants: no evidence of a difference
        return 1.0
    return float(mannwhitneyu(b, a, alternative="two-sided").pvalue)


def _latest_per_cell(df) -> dict[tuple, dict]:
    """One row per cell key; the latest by timestamp when a run (or folder) holds repeats."""
    rows: dict[tuple, dict] = {}
    if df is None or len(df) == 0:
        return rows
    for r in df.sort_values("timestamp", kind="stable").to_dict("records"):
        rows[cell_key(r)] = r
    return rows


def _num(x) -> float | None:
    if x is None:
        return None
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def _samples(row: dict) -> list[float]:
    s = row.get("samples_s")
    return [] if s is None else [float(x) for x in s]


def _clean_ratios(base: dict, new: dict) -> dict[str, list[float]]:
    """Per profile, the ratios of medians of the cells timed in both runs and noisy in neither."""
    out: dict[str, list[float]] = {}
    for key, b in base.items():
        n = new.get(key)
        if n is None or _flag(b.get("noisy")) or _flag(n.get("noisy")):
            continue
        bm, nm = _num(b.get("latency_median_s")), _num(n.get("latency_median_s"))
        if bm and nm and bm > 0 and nm > 0:
            out.setdefault(key[3], []).append(nm / bm)
    return out


def run_spread(base_df, new_df) -> dict[str, dict]:
    """The run-to-run spread of a pair of runs, per profile (see the module docstring).

    Args:
        base_df, new_df: results DataFrames of the two runs.
    Returns:
        {profile: {"cells": n, "spread": robust sigma of the log ratios (:func:`shorth_sigma`), or None when
        n < MIN_SPREAD_CELLS,
        "median_ratio": median ratio or None}} for every profile with a cell timed cleanly in both.
    """
    return _spread_of(_clean_ratios(_latest_per_cell(base_df), _latest_per_cell(new_df)))


def _spread_of(ratios: dict[str, list[float]]) -> dict[str, dict]:
    out = {}
    for profile, rs in ratios.items():
        logs = sorted(math.log(r) for r in rs)
        if len(logs) < MIN_SPREAD_CELLS:
            out[profile] = {"cells": len(logs), "spread": None, "median_ratio": None}
            continue
        out[profile] = {"cells": len(logs), "spread": shorth_sigma(logs),
                        "median_ratio": math.exp(_median(logs))}
    return out


def shorth_sigma(xs: list[float]) -> float:
    """A robust standard deviation: the length of the shortest interval holding half the values, over
    2 × 0.6745 (the length for a Gaussian). Unlike the median absolute deviation, a block of
    cells that all moved together (half the matrix slower by one change) does not inflate it: the
    shortest half lies within the unchanged cells, or within the moved ones, and both are tight."""
    xs = sorted(xs)
    h = (len(xs) + 1) // 2  # half of them: a block of exactly half that moved together is one tight half
    return min(xs[i + h - 1] - xs[i] for i in range(len(xs) - h + 1)) / (2 * 0.6745)


def _median(xs: list[float]) -> float:
    n = len(xs)
    return xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])


def change_floor(spread: dict | None, factor: float, noise_k: float) -> float:
    """The smallest ratio (> 1) a speed verdict needs in a profile: the factor, or noise_k spreads above it."""
    s = (spread or {}).get("spread")
    return factor if s is None or noise_k <= 0 else max(factor, math.exp(noise_k * s))


def compare_runs(base_df, new_df, factor: float = DEFAULT_FACTOR, alpha: float = DEFAULT_ALPHA,
                 noise_k: float = DEFAULT_NOISE_K, spread: dict[str, dict] | None = None) -> list[dict]:
    """Verdicts for every cell of two runs, regressions first.

    Args:
        base_df, new_df: results DataFrames (:func:`suite.results.read_results`) of the two runs.
        factor: a slowdown must exceed this ratio of medians to count (>= 1; 1.0 = significance only).
        alpha: significance level of the Mann-Whitney U test.
        noise_k: a change must also exceed this many run-to-run spreads (0: the factor alone).
        spread: :func:`run_spread` of the two whole runs, when base_df / new_df hold only some of their
            cells (the dashboard's history); None = computed from base_df and new_df.
    Returns:
        one dict per cell: workload, params, target, profile, mode, base_status, new_status,
        base_median_s, new_median_s, ratio, p_value, n_base, n_new, verdict (regression /
        improvement / unchanged / not comparable), kind (numerics / speed / None), floor (the ratio
        a speed verdict needed in this profile) and note.
    """
    if factor < 1.0:
        raise ValueError(f"factor {factor}: expected >= 1.0")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha {alpha}: expected a level in (0, 1)")
    if noise_k < 0:
        raise ValueError(f"noise_k {noise_k}: expected >= 0")
    base, new = _latest_per_cell(base_df), _latest_per_cell(new_df)
    if spread is None:
        spread = _spread_of(_clean_ratios(base, new))
    out = []
    for key in list(base) + [k for k in new if k not in base]:
        b, n = base.get(key), new.get(key)
        row: dict[str, Any] = dict(zip(("workload", "params", "target", "profile", "mode"), key))
        row.update(base_status=b["status"] if b else None, new_status=n["status"] if n else None,
                   base_median_s=_num(b.get("latency_median_s")) if b else None,
                   new_median_s=_num(n.get("latency_median_s")) if n else None,
                   ratio=None, p_value=None, n_base=len(_samples(b)) if b else 0,
                   n_new=len(_samples(n)) if n else 0, verdict="not comparable", kind=None,
                   floor=change_floor(spread.get(key[3]), factor, noise_k), note="")
        out.append(row)
        if b is None or n is None:
            row["note"] = "only in NEW" if b is None else "only in BASE"
            continue
        bs, ns = row["base_status"], row["new_status"]
        if bs != ns and bs not in _NOT_RUN and ns not in _NOT_RUN:
            if bs == "pass":
                row.update(verdict="regression", kind="numerics", note=f"status {bs} -> {ns}")
                reason = (n.get("status_reason") or "").strip().splitlines()
                if reason:
                    row["note"] += f": {reason[0][:120]}"
                continue
            if ns == "pass":
                row.update(verdict="improvement", kind="numerics", note=f"status {bs} -> {ns}")
                continue
        bm, nm = row["base_median_s"], row["new_median_s"]
        if bm is None or nm is None or bm <= 0:
            row["note"] = f"not timed in both ({bs} / {ns})" if bs == ns else f"status {bs} -> {ns}"
            continue
        ratio = nm / bm
        p = mann_whitney_p(_samples(b), _samples(n))
        row.update(ratio=ratio, p_value=p, verdict="unchanged", kind="speed")
        noisy = [f"noisy in {side}: {r.get('noisy_reason') or 'host not steady'}"
                 for side, r in (("BASE", b), ("NEW", n)) if _flag(r.get("noisy"))]
        floor = row["floor"]
        if noisy:
            row.update(verdict="not comparable", note="; ".join(noisy))
        elif p < alpha and ratio > floor:
            row["verdict"] = "regression"
        elif p < alpha and ratio < 1.0 / floor:
            row["verdict"] = "improvement"
        elif p >= alpha and abs(ratio - 1.0) > factor - 1.0:
            row["note"] = "large change but not significant (noisy samples)"
        elif max(ratio, 1.0 / ratio) > factor:
            row["note"] = f"within the run-to-run spread of {key[3]} (needs > {floor:.2f}x)"
    out.sort(key=lambda r: (_ORDER[r["verdict"]], r["kind"] != "numerics", -(r["ratio"] or 0.0)
                            if r["verdict"] == "regression" else (r["ratio"] or 0.0)))
    return out


def _flag(x) -> bool:
    """A nullable boolean column's value (None / NaN / pd.NA -> False)."""
    try:
        return bool(x) and x == x
    except TypeError:  # pd.NA
        return False


def _run_state(df) -> dict:
    """How a run's host was: its start-of-run load, its share of noisy cells, host and CPU frequency."""
    def first(col):
        vals = df[col].dropna() if col in df else []
        return vals.iloc[0] if len(vals) else None

    timed = df[df["latency_median_s"].notna()] if "latency_median_s" in df else df.iloc[:0]
    noisy = int(timed["noisy"].fillna(False).astype(bool).sum()) if "noisy" in timed else 0
    mhz = timed["cpu_mhz"].dropna() if "cpu_mhz" in timed else []
    return {"host": first("host"), "busy": _num(first("host_busy_start")), "load": _num(first("host_load_start")),
            "noisy": noisy, "timed": len(timed), "mhz": float(mhz.median()) if len(mhz) else None}


def host_state_note(base_df, new_df) -> str:
    """One line when the two runs were measured in different host states, else ""."""
    b, n = _run_state(base_df), _run_state(new_df)
    diffs = []
    if b["host"] and n["host"] and b["host"] != n["host"]:
        diffs.append(f"host {b['host']} vs {n['host']}")
    if b["busy"] is not None and n["busy"] is not None and abs(b["busy"] - n["busy"]) > 0.10:
        diffs.append(f"other processes used {b['busy']:.0%} vs {n['busy']:.0%} of the CPUs at the start "
                     f"(load {b['load'] or 0:.2f} vs {n['load'] or 0:.2f})")
    share = [x["noisy"] / x["timed"] if x["timed"] else 0.0 for x in (b, n)]
    if abs(share[0] - share[1]) > 0.05:
        diffs.append(f"noisy cells {b['noisy']}/{b['timed']} vs {n['noisy']}/{n['timed']}")
    if b["mhz"] and n["mhz"] and abs(n["mhz"] / b["mhz"] - 1) > 0.05:
        diffs.append(f"CPU clock {b['mhz']:.0f} vs {n['mhz']:.0f} MHz")
    return ("the two runs differ in host state: " + "; ".join(diffs)) if diffs else ""


def spread_note(spread: dict[str, dict], factor: float, noise_k: float) -> str:
    """One line: each profile's run-to-run spread in this pair and the smallest change it can call."""
    parts = []
    for profile in sorted(spread):
        sp = spread[profile]
        if sp["spread"] is None:
            parts.append(f"{profile}: {sp['cells']} clean cell(s), too few to estimate (factor {factor:.2f} alone)")
        else:
            parts.append(f"{profile}: ±{sp['spread']:.1%} over {sp['cells']} cells (median ratio "
                         f"{sp['median_ratio']:.3f}), a change must exceed {change_floor(sp, factor, noise_k):.2f}x")
    if not parts:
        return ""
    return f"run-to-run spread (robust sigma of log ratios, x{noise_k:g}): " + "; ".join(parts)


def has_regression(rows: list[dict]) -> bool:
    return any(r["verdict"] == "regression" for r in rows)


def summary(rows: list[dict]) -> str:
    counts = {v: sum(r["verdict"] == v for r in rows) for v in _ORDER}
    return (f"{len(rows)} cells: {counts['regression']} regression(s), {counts['improvement']} improvement(s), "
            f"{counts['unchanged']} unchanged, {counts['not comparable']} not comparable")


# ---------------------------------------------------------------------------------------------------
# loading

def load_side(spec: str, results_dir: str | Path):
    """Resolves BASE or NEW: a folder of results (its latest run) or a run id within ``results_dir``.

    Args:
        spec: a folder path, or a run id.
        results_dir: where run ids are looked up.
    Returns:
        (label, DataFrame of that run).
    Raises:
        LookupError: neither a results folder nor a stored run id (message says what exists).
    """
    from suite.results import read_results, result_files

    p = Path(spec)
    if p.is_dir():
        df = read_results(p)
        if len(df) == 0:
            raise LookupError(f"{spec}: no results in this folder")
        latest = df.groupby("run_id")["timestamp"].max().sort_values().index[-1]
        return f"{latest} ({spec})", df[df.run_id == latest]
    df = read_results(results_dir, [spec])
    if len(df) == 0:
        runs = sorted({f.name.split("__", 1)[0] for f in result_files(results_dir)})
        known = ", ".join(runs[-5:]) if runs else "none"
        raise LookupError(f"{spec!r} is neither a results folder nor a run id in {results_dir} "
                          f"(latest runs: {known})")
    return spec, df


# ---------------------------------------------------------------------------------------------------
# formatting

def _params_text(params: str) -> str:
    return " ".join(f"{k}={v}" for k, v in json.loads(params).items())


def _ms(x) -> str:
    return "-" if x is None else f"{x * 1e3:.3f}"


def _cells(r: dict) -> list[str]:
    ratio = "-" if r["ratio"] is None else f"{r['ratio']:.3f}"
    p = "-" if r["p_value"] is None else f"{r['p_value']:.1e}"
    verdict = r["verdict"] + (f" ({r['kind']})" if r["kind"] == "numerics" else "")
    return [f"{r['workload']} [{_params_text(r['params'])}]", r["target"], r["profile"],
            f"{r['base_status'] or '-'} -> {r['new_status'] or '-'}", _ms(r["base_median_s"]),
            _ms(r["new_median_s"]), ratio, p, verdict, r["note"]]


_HEADER = ["cell", "target", "profile", "status", "base ms", "new ms", "ratio", "p", "verdict", "note"]


def format_table(rows: list[dict], base: str, new: str, factor: float, alpha: float, host_note: str = "",
                 spread_line: str = "") -> str:
    """A terminal table, regressions first, then a summary line."""
    from suite.report import _table

    head = (f"bench compare: BASE {base} vs NEW {new} (regression: ratio > {factor:g}, beyond the run-to-run "
            f"spread, and p < {alpha:g})")
    if spread_line:
        head += f"\n{spread_line}"
    if host_note:
        head += f"\nwarning: {host_note}"
    body = _table(_HEADER, [_cells(r) for r in rows]) if rows else "(no cells)"
    return f"{head}\n\n{body}\n\n{summary(rows)}"


def format_markdown(rows: list[dict], base: str, new: str, factor: float, alpha: float, host_note: str = "",
                    spread_line: str = "") -> str:
    """A Markdown report for a pull-request comment."""
    icon = {"regression": ":red_circle:", "improvement": ":green_circle:", "unchanged": "", "not comparable": ""}
    lines = [f"### bench compare: `{base}` → `{new}`", "", *([f"> :warning: {host_note}", ""] if host_note else []),
             f"Regression: ratio of medians > {factor:g} and beyond the run-to-run spread, and Mann-Whitney U "
             f"p < {alpha:g}; a numerics change (pass → fail) is a regression whatever the speed.", "",
             *([spread_line, ""] if spread_line else []),
             f"**{summary(rows)}**", "",
             "| " + " | ".join(_HEADER) + " |", "|" + "---|" * len(_HEADER)]
    for r in rows:
        cells = [c.replace("|", "\\|") for c in _cells(r)]
        cells[8] = f"{icon[r['verdict']]} {cells[8]}".strip()
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_json(rows: list[dict], base: str, new: str, factor: float, alpha: float, host_note: str = "",
                spread_line: str = "") -> str:
    """Machine-readable: the settings, the summary counts and every row."""
    counts = {v: sum(r["verdict"] == v for r in rows) for v in _ORDER}
    return json.dumps({"base": base, "new": new, "factor": factor, "alpha": alpha, "host_state": host_note,
                       "run_spread": spread_line,
                       "regression": has_regression(rows), "counts": counts, "cells": rows}, indent=2)


FORMATTERS = {"table": format_table, "markdown": format_markdown, "json": format_json}
