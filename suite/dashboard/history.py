"""Median latency of every cell over successive runs, with regressions marked.

The verdict is ``bench compare``'s (:func:`suite.compare.compare_runs`, each run against the run
before it) when that module and scipy are installed; otherwise :func:`ratio_verdict` below, a
minimal ratio rule kept in one function, against the cell's previous appearance.
"""
from __future__ import annotations

import importlib
import math

MAX_RUNS = 100            # runs drawn in the history view (the most recent ones)
REGRESSION_THRESHOLD = 0.10  # a median more than 10% slower than the previous run's is a regression


def ratio_verdict(prev_median: float, cur_median: float, prev_ci=None, cur_ci=None,
                  threshold: float = REGRESSION_THRESHOLD) -> str:
    """The minimal marker: compares a cell's median with the same cell's median in the previous run.

    Args:
        prev_median, cur_median: medians in seconds.
        prev_ci, cur_ci: optional (low, high) confidence intervals of the medians; when both are
            given and they overlap, the change is not called (it is within the noise).
        threshold: the relative change that counts.
    Returns:
        ``"regression"`` (slower), ``"improvement"`` (faster) or ``"same"``.
    """
    if not (prev_median and cur_median) or not math.isfinite(prev_median) or not math.isfinite(cur_median):
        return "same"
    ratio = cur_median / prev_median
    if prev_ci is not None and cur_ci is not None and all(map(_finite, (*prev_ci, *cur_ci))):
        if cur_ci[0] <= prev_ci[1] and prev_ci[0] <= cur_ci[1]:
            return "same"
    if ratio > 1.0 + threshold:
        return "regression"
    if ratio < 1.0 / (1.0 + threshold):
        return "improvement"
    return "same"


def _finite(x) -> bool:
    try:
        return x is not None and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def compare_verdicts(rows, candidates: dict):
    """Verdicts of ``bench compare`` (:func:`suite.compare.compare_runs`) for some cells of run pairs.

    Only cells whose median moved by more than compare's factor can get a speed verdict, so only
    those are handed to ``compare_runs`` (its Mann-Whitney test is the slow part); the verdicts are
    the ones ``bench compare PREV CUR`` prints for them.

    Args:
        rows: stored rows with ``samples_s`` (the test needs the raw samples).
        candidates: {(prev_run, cur_run): set of cell keys (workload, params, target, profile, mode)}.
    Returns:
        {(cur_run, *cell key): verdict}, or None when ``suite.compare`` (or scipy, which it needs)
        is not installed.
    """
    try:
        from suite.compare import compare_runs, run_spread
        importlib.import_module("scipy.stats")  # compare_runs imports it lazily; fail here, not mid-build
    except ImportError:
        return None
    runs = {r for pair in candidates for r in pair}
    sub = rows[rows["run_id"].isin(runs)]
    keys = list(zip(sub["workload"], sub["params"], sub["target"], sub["profile"], sub["mode"]))
    by_run: dict = {}
    for i, (run, key) in enumerate(zip(sub["run_id"], keys)):
        by_run.setdefault(run, {}).setdefault(key, []).append(i)
    out = {}
    for (prev, cur), cells in candidates.items():
        pick = lambda run: sub.iloc[[i for k in cells for i in by_run.get(run, {}).get(k, [])]]  # noqa: E731
        # the run-to-run spread is the whole pair's, not that of the cells that moved
        spread = run_spread(rows[rows["run_id"] == prev], rows[rows["run_id"] == cur])
        for r in compare_runs(pick(prev), pick(cur), spread=spread):
            out[(cur, r["workload"], r["params"], r["target"], r["profile"], r["mode"])] = r["verdict"]
    return out


def compare_factor() -> float | None:
    """``bench compare``'s default factor, or None when suite.compare is not there."""
    try:
        from suite.compare import DEFAULT_FACTOR
    except ImportError:
        return None
    return DEFAULT_FACTOR


def verdict_rule(using_compare: bool) -> str:
    """How the page's regression marks were decided, in words."""
    if using_compare:
        from suite.compare import DEFAULT_ALPHA, DEFAULT_FACTOR, DEFAULT_NOISE_K

        return (f"bench compare's rule against the previous run: median ratio > {DEFAULT_FACTOR:.2f} and beyond "
                f"{DEFAULT_NOISE_K:g} times the pair's run-to-run spread, and Mann-Whitney p < {DEFAULT_ALPHA:g} "
                "on the raw samples")
    return f"median ratio > {1 + REGRESSION_THRESHOLD:.2f} with non-overlapping CIs, against the cell's previous run"


def history_frame(rows, profiles, max_runs: int = MAX_RUNS):
    """One row per (run, cell) with a median latency, each with its verdict against the cell's previous run.

    Args:
        rows: :attr:`Data.rows` (every stored row with derived columns).
        profiles: the profiles shown.
        max_runs: only the most recent runs.
    Returns:
        a DataFrame sorted by cell then run start, with ``ratio_prev``, ``verdict`` and ``rel``
        (median / the cell's median over the shown runs), or an empty one with fewer than two runs.
    """
    import pandas as pd

    run_order = rows.groupby("run_id")["run_start"].first().sort_values()
    keep_runs = list(run_order.index[-max_runs:])
    h = rows[rows["run_id"].isin(keep_runs) & rows["profile"].isin(profiles)
             & rows["latency_median_s"].notna() & (rows["latency_median_s"] > 0)]
    cols = ["run_id", "run_start", "git_commit", "workload", "params", "cell", "target", "family", "profile",
            "mode", "status", "latency_median_s", "latency_ci_low_s", "latency_ci_high_s", "unstable"]
    h = h[cols].drop_duplicates(["run_id", "workload", "params", "target", "profile", "mode"], keep="last")
    if h["run_id"].nunique() < 2:
        empty = h.iloc[0:0].assign(ratio_prev=[], verdict=[], rel=[])
        empty.attrs["rule"] = verdict_rule(False)
        return empty
    h = h.sort_values(["workload", "params", "target", "profile", "mode", "run_start"]).reset_index(drop=True)
    key = ["workload", "params", "target", "profile", "mode"]
    g = h.groupby(key, sort=False)
    prev_med = g["latency_median_s"].shift(1)
    prev_lo = g["latency_ci_low_s"].shift(1)
    prev_hi = g["latency_ci_high_s"].shift(1)
    med = h["latency_median_s"].to_numpy(float)
    lo = h["latency_ci_low_s"].to_numpy(float, na_value=float("nan"))
    hi = h["latency_ci_high_s"].to_numpy(float, na_value=float("nan"))
    pm = prev_med.to_numpy(float, na_value=float("nan"))
    pl = prev_lo.to_numpy(float, na_value=float("nan"))
    ph = prev_hi.to_numpy(float, na_value=float("nan"))
    h["ratio_prev"] = med / pm
    factor = compare_factor()
    verdicts = None
    if factor is not None:
        # compare_runs pairs each run with the run before it; a cell missing there is "not comparable".
        before = dict(zip(keep_runs[1:], keep_runs[:-1]))
        prev_run = g["run_id"].shift(1)
        adjacent = (prev_run == h["run_id"].map(before)).to_numpy()
        moved = adjacent & ((h["ratio_prev"] > factor) | (h["ratio_prev"] < 1 / factor)).to_numpy()
        candidates: dict = {}
        for run, *key in h.loc[moved, ["run_id", "workload", "params", "target", "profile", "mode"]].itertuples(
                index=False):
            candidates.setdefault((before[run], run), set()).add(tuple(key))
        verdicts = compare_verdicts(rows, candidates)
    if verdicts is not None:
        keys = zip(h["run_id"], h["workload"], h["params"], h["target"], h["profile"], h["mode"])
        h["verdict"] = [verdicts.get(k, "same" if adj else "") for k, adj in zip(keys, adjacent)]
        h["verdict"] = h["verdict"].replace({"unchanged": "same", "not comparable": ""})
    else:
        h["verdict"] = ["" if math.isnan(pm[i]) else ratio_verdict(pm[i], med[i], (pl[i], ph[i]), (lo[i], hi[i]))
                        for i in range(len(h))]
    h.attrs["rule"] = verdict_rule(verdicts is not None)
    h["rel"] = med / g["latency_median_s"].transform("median").to_numpy(float)
    h["run_start"] = pd.to_datetime(h["run_start"], utc=True)
    return h
