"""Results store -> the tidy frames the dashboard draws. pandas only; no plotly here.

The page shows, per cell (workload, params, target, profile, mode), the cell's most recent row:
partial runs (``bench run -w one_model``) then add to, rather than hide, what earlier runs
measured. History (:mod:`.history`) is the only view over every run.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from suite.results import read_results
from suite.verify import GOOD_STATUSES, STATUSES

CELL_KEY = ["workload", "params", "target", "profile", "mode"]
MAX_SAMPLES = 60  # raw samples kept per cell for the distribution view (quantiles of all of them)
PROFILE_ORDER = ("cpu", "cpu-1t", "mobile-runtime", "cuda", "tpu")
MODE_ORDER = ("inference", "train")
# Statuses of a cell that ran here and did not pass, in the order the page lists them: a cell that
# computes the wrong thing (fail, nan, shape_mismatch) before one that could not run (error, crashed, timeout).
FAILED = tuple(s for s in STATUSES if s not in GOOD_STATUSES)


class DashboardError(Exception):
    """No results, or results the dashboard cannot draw: printed as one line by the CLI."""


@dataclass
class Data:
    """Everything the figures and the page need, derived once from the store."""
    rows: object                      # every stored row, with derived columns
    latest: object                    # the most recent row per cell, derived columns, samples kept
    runs: object                      # one row per run: id, start, commit, host, counts
    profiles: list[str]               # profiles with at least one row that is not "profile unavailable"
    unavailable: dict[str, str]       # profile -> why it was not available here
    targets: list[str]
    families: list[str]
    workloads: list[str]
    timed: object = None              # latest rows with a median latency, in shown profiles
    modes: list[str] = field(default_factory=list)  # modes with at least one cell: inference, train
    extra: dict = field(default_factory=dict)


def params_text(params: str) -> str:
    """``'{"batch": 32, "seq": 8}'`` -> ``'batch=32 seq=8'``."""
    try:
        return " ".join(f"{k}={v}" for k, v in json.loads(params).items())
    except (TypeError, ValueError):
        return str(params)


def family_of(target: str, framework) -> str:
    """The target family used by the filters: the framework (torch, tensorflow, jax, keras, ...)."""
    if isinstance(framework, str) and framework:
        return framework
    for sep in (":", ">", "["):
        if sep in target:
            return target.split(sep, 1)[0]
    return target


def first_line(text, limit: int = 240) -> str:
    """The first line of a status reason, at most ``limit`` characters (``''`` when there is none)."""
    return (str(text or "").strip().splitlines() or [""])[0][:limit]


def fmt_time(s) -> str:
    """Seconds as a short human text: ``'83.1 µs'``, ``'4.20 ms'``, ``'1.53 s'``; ``'-'`` when missing."""
    if s is None or not np.isfinite(s):
        return "-"
    if s < 1e-3:
        return f"{s * 1e6:.3g} µs"
    if s < 1.0:
        return f"{s * 1e3:.3g} ms"
    return f"{s:.3g} s"


def fmt_bytes(n) -> str:
    if n is None or not np.isfinite(n):
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.3g} {unit}"
        n /= 1024.0
    return "-"


def downsample(samples, k: int = MAX_SAMPLES) -> np.ndarray:
    """At most ``k`` values that keep the shape of a sample: its evenly spaced quantiles (min and max kept)."""
    if samples is None:
        return np.empty(0)
    a = np.asarray(samples, dtype=float)
    a = a[np.isfinite(a)]
    if a.size <= k:
        return a
    return np.quantile(a, np.linspace(0.0, 1.0, k))


def _profile_unavailable(status, reason) -> bool:
    return status == "skipped" and str(reason or "").startswith("profile")


def _order(values, preferred) -> list[str]:
    vals = list(dict.fromkeys(values))
    rank = {v: i for i, v in enumerate(preferred)}
    return sorted(vals, key=lambda v: (rank.get(v, len(rank)), v))


def load(results_dir) -> Data:
    """Reads the store through :func:`suite.results.read_results` and derives what the page shows.

    Args:
        results_dir: the results folder.
    Returns:
        a :class:`Data`.
    Raises:
        DashboardError: when the folder holds no results.
    """
    df = read_results(results_dir)
    if df.empty:
        raise DashboardError(f"no results in {results_dir}; run `bench run` first")
    df = df.sort_values("timestamp", kind="stable").reset_index(drop=True)
    df["mode"] = df["mode"].fillna("inference")
    ptext = {p: params_text(p) for p in df["params"].unique()}
    df["params_text"] = df["params"].map(ptext)
    df["cell"] = df["workload"] + " [" + df["params_text"] + "]"
    other = df["mode"] != "inference"
    df.loc[other, "cell"] = df.loc[other, "cell"] + " " + df.loc[other, "mode"]
    fam = {(t, f): family_of(t, f) for t, f in df[["target", "framework"]].drop_duplicates().itertuples(index=False)}
    df["family"] = [fam[(t, f)] for t, f in zip(df["target"], df["framework"])]
    run_start = df.groupby("run_id")["timestamp"].min()
    df["run_start"] = df["run_id"].map(run_start)

    latest = df.drop_duplicates(CELL_KEY, keep="last")
    # a target that is no route of the cell's workload (a graph target on a source: model, or the reverse) is not
    # a result: no matrix cell, no count, no line among the cells that did not pass
    from suite.sources import not_a_route

    latest = latest[[not not_a_route({"status": s, "status_reason": r})
                     for s, r in zip(latest["status"], latest["status_reason"])]].copy()
    unavail_mask = [_profile_unavailable(s, r) for s, r in zip(latest["status"], latest["status_reason"])]
    latest["profile_unavailable"] = unavail_mask
    by_prof = latest.groupby("profile")["profile_unavailable"].all()
    unavailable = {}
    for p, allskip in by_prof.items():
        if allskip:
            unavailable[p] = str(latest.loc[latest["profile"] == p, "status_reason"].iloc[0])
    profiles = _order([p for p in latest["profile"] if p not in unavailable], PROFILE_ORDER)
    latest = latest.sort_values(["workload", "batch_size", "params", "target"], kind="stable")

    targets = _order(latest["target"], ())
    fam_order = ("torch", "tensorflow", "jax", "keras")
    targets = sorted(targets, key=lambda t: (_order(latest["family"], fam_order).index(
        latest.loc[latest["target"] == t, "family"].iloc[0]), t))
    rank = {t: i for i, t in enumerate(targets)}
    latest = latest.assign(_rank=latest["target"].map(rank)).sort_values(
        ["workload", "batch_size", "params", "_rank"], kind="stable").drop(columns="_rank")
    shown = latest[latest["profile"].isin(profiles)]
    timed = shown[shown["latency_median_s"].notna() & (shown["latency_median_s"] > 0)]

    runs = _runs_table(df)
    return Data(rows=df, latest=latest, runs=runs, profiles=profiles, unavailable=unavailable,
                targets=targets, families=_order(latest["family"], fam_order),
                workloads=sorted(latest["workload"].unique()), timed=timed,
                modes=_order(latest["mode"], MODE_ORDER))


def _runs_table(df):
    import pandas as pd

    g = df.groupby("run_id", sort=False)
    runs = pd.DataFrame({
        "start": g["timestamp"].min(),
        "end": g["timestamp"].max(),
        "git_commit": g["git_commit"].last(),
        "host": g["host"].last(),
        "cpu_model": g["cpu_model"].last(),
        "rows": g.size(),
    })
    counts = df.groupby(["run_id", "status"]).size().unstack(fill_value=0)
    order = [s for s in STATUSES if s in counts.columns] + [s for s in counts.columns if s not in STATUSES]
    runs["statuses"] = [", ".join(f"{counts.loc[r, s]} {s}" for s in order if counts.loc[r, s])
                        for r in runs.index]
    return runs.sort_values("start").reset_index()


def environment(data: Data) -> list[tuple[str, str]]:
    """(name, value) pairs describing where the most recent run ran: host, CPU, threads, versions, commit.

    The values are the columns :func:`suite.envinfo.run_metadata` fills on every row of a run
    (suite_version, git_commit, host, cpu_model, cpu_count, python_version, platform); a column the
    run's rows do not carry reads ``"not recorded"``.
    """
    import pandas as pd

    last_run = data.runs["run_id"].iloc[-1]
    lr = data.latest[data.latest["run_id"] == last_run]
    if lr.empty:
        lr = data.latest

    def val(col):
        # The run's last value that is set: rows written before the runner stored every run_metadata key
        # (python_version, platform and cpu_count were dropped there) have them null.
        vals = lr[col].dropna() if col in lr else pd.Series(dtype=object)
        return str(vals.iloc[-1]) if len(vals) else "not recorded"

    nodes = lr["node_id"].dropna().nunique() if "node_id" in lr else 0
    host = f"{nodes} nodes of a Ray cluster (see Hosts)" if nodes > 1 else val("host")
    pairs = [("run", str(last_run)), ("git commit", val("git_commit")), ("host", host),
             ("CPU", val("cpu_model")), ("CPU count", val("cpu_count")), ("python", val("python_version")),
             ("platform", val("platform")), ("suite", val("suite_version"))]
    threads = lr.dropna(subset=["threads"]).groupby("profile")["threads"].first()
    if len(threads):
        pairs.append(("threads", ", ".join(f"{p}: {int(t)}" for p, t in threads.items())))
    versions: dict[str, str] = {}
    for v in lr["versions"].dropna().unique():
        try:
            versions.update({k: str(x) for k, x in json.loads(v).items() if x})
        except ValueError:
            continue
    for _, r in lr.drop_duplicates("target").iterrows():
        if isinstance(r.get("runtime_version"), str) and r.get("runtime") not in (None, "") and \
                r.get("format") not in (None, "native"):
            versions.setdefault(str(r["runtime"]), r["runtime_version"])
        if isinstance(r.get("framework_version"), str) and isinstance(r.get("framework"), str):
            versions.setdefault(r["framework"], r["framework_version"])
    if versions:
        pairs.append(("versions", ", ".join(f"{k} {v}" for k, v in sorted(versions.items()))))
    return pairs


def hosts(data: Data) -> list[dict[str, str]]:
    """One entry per node of the most recent run when it ran on a cluster (`bench run --ray`), else [].

    Each: host (with the Ray node's short id), CPU, CPU count, python, platform, commit, the profiles of the
    cells it ran and how many cells that was.
    """
    last_run = data.runs["run_id"].iloc[-1]
    lr = data.latest[(data.latest["run_id"] == last_run)]
    if "node_id" not in lr or lr["node_id"].dropna().empty:
        return []
    out = []
    for node, rows in lr.dropna(subset=["node_id"]).groupby("node_id", sort=False):
        def val(col, rows=rows):
            vals = rows[col].dropna() if col in rows else []
            return str(vals.iloc[-1]) if len(vals) else "not recorded"

        out.append({"host": f"{val('host')} ({str(node)[:8]})", "CPU": val("cpu_model"), "CPU count": val("cpu_count"),
                    "python": val("python_version"), "platform": val("platform"), "commit": val("git_commit")[:10],
                    "profiles": ", ".join(sorted(rows["profile"].unique())), "cells": str(len(rows))})
    return sorted(out, key=lambda h: h["host"])


def status_counts(data: Data):
    """Profile x status counts of the cells shown (latest row per cell), as a DataFrame.

    With more than one mode in the store the rows are profile and mode (``"cpu train"``), so the
    train cells' statuses are not mixed into the inference ones.
    """
    lat = data.latest
    if len(data.modes) > 1:
        label = lat["profile"].where(lat["mode"] == "inference", lat["profile"] + " " + lat["mode"])
        rank = {p: i for i, p in enumerate(_order(lat["profile"], PROFILE_ORDER))}
        mrank = {m: i for i, m in enumerate(data.modes)}
        order = sorted(dict.fromkeys(zip(label, lat["profile"], lat["mode"])),
                       key=lambda x: (rank[x[1]], mrank[x[2]]))
        index = [x[0] for x in order]
    else:
        label = lat["profile"]
        index = _order(label, PROFILE_ORDER)
    c = lat.groupby([label.rename("profile"), lat["status"]]).size().unstack(fill_value=0)
    cols = [s for s in STATUSES if s in c.columns] + [s for s in c.columns if s not in STATUSES]
    c = c[cols]
    c = c.loc[index]
    c["total"] = c.sum(axis=1)
    return c


def cells_download(data: Data):
    """The per-cell table behind the page (latest row per cell, no raw samples)."""
    keep = [c for c in data.latest.columns if c not in ("samples_s", "profile_unavailable", "run_start")]
    out = data.latest[keep].copy()
    out["timestamp"] = out["timestamp"].astype(str)
    if "affinity" in out:
        out["affinity"] = out["affinity"].map(lambda a: None if a is None else " ".join(map(str, a)))
    return out.reset_index(drop=True)
