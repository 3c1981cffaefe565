"""What the trackers share: which runs the results store holds, the cells of one run, and the stable
key that names a cell's metric in MLflow and TensorBoard alike.

Metric keys: ``<workload>/<sweep>/<target>/<profile>[/train]/<metric>``, e.g.
``mlp_classifier/batch:32/torch.to.onnx.at.onnxruntime/cpu/latency_median_s``.

- ``<sweep>``: the cell's sweep values, ``name:value`` joined by ``_`` in key order
  (``{"batch": 1, "seq": 16}`` -> ``batch:1_seq:16``); ``default`` when the workload has no sweep.
- ``/train`` only for train-mode cells; inference cells (the default mode) have no mode segment, so
  their keys do not change when a run adds train cells.
- Sanitizing, per segment (MLflow allows only letters, digits and ``_ - . : /`` and space in a key):
  ``>`` -> ``.to.``, ``@`` -> ``.at.``, ``[`` -> ``.``, ``]`` -> nothing, ``=`` -> ``:``, ``,`` -> ``_``,
  then any other character that is not a letter, digit, ``_ - . :`` (``/`` and space included, so a
  segment never splits) -> ``_``. So ``keras[jax]`` -> ``keras.jax``, ``torch:eager`` stays.
  Deterministic and documented; two cells that would share a key are an error, never merged.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Iterable

# Run-level numbers are not per cell; everything else a tracker logs per cell comes from these columns.
CELL_METRICS = ("latency_median_s", "latency_p90_s", "latency_ci_low_s", "latency_ci_high_s", "throughput",
                "first_call_s", "compile_s", "max_abs_err", "max_rel_err", "loss_abs_err", "grad_max_abs_err",
                "peak_rss_bytes")
NOT_RUN = ("skipped", "unsupported")  # no ``pass`` metric: the cell did not run here, it did not fail
_WORDS = (("]", ""), (">", ".to."), ("@", ".at."), ("[", "."), ("=", ":"), (",", "_"))
_OTHER = re.compile(r"[^A-Za-z0-9_.:\-]")
MAX_KEY = 250  # MLflow's limit on a metric key


class PublishError(Exception):
    """Why a run could not be published, in one line (the CLI prints it and exits 2)."""


def sanitize(segment: str) -> str:
    """One segment of a metric key, made of the characters MLflow allows (see the module docstring)."""
    for old, new in _WORDS:
        segment = segment.replace(old, new)
    return _OTHER.sub("_", segment) or "_"


def sweep_text(params: str | dict | None) -> str:
    """``'{"batch": 1, "seq": 16}'`` -> ``batch:1_seq:16`` (``default`` for no sweep)."""
    values = json.loads(params) if isinstance(params, str) else dict(params or {})
    return "_".join(f"{k}:{v}" for k, v in values.items()) or "default"


def cell_prefix(row: dict) -> str:
    """The key of a cell without its metric name: ``<workload>/<sweep>/<target>/<profile>[/train]``."""
    parts = [row["workload"], sweep_text(row.get("params")), row["target"], row["profile"]]
    if (row.get("mode") or "inference") == "train":
        parts.append("train")
    return "/".join(sanitize(str(p)) for p in parts)


def metric_key(row: dict, metric: str) -> str:
    """``<cell_prefix>/<metric>``; see the module docstring."""
    return f"{cell_prefix(row)}/{sanitize(metric)}"


def num(x: Any) -> float | None:
    """A finite float, or None for null, NaN, pd.NA and infinities."""
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def text(x: Any) -> str | None:
    """A string cell's value, or None for null / NaN / pd.NA / empty."""
    if x is None or isinstance(x, float) and math.isnan(x):
        return None
    try:
        s = str(x)
    except TypeError:
        return None
    return None if s in ("", "<NA>", "nan") else s


# ---------------------------------------------------------------------------------------------------
# runs of the results store


def run_times(results_dir: str | Path) -> dict[str, tuple]:
    """Every stored run with its first and last row time: ``{run_id: (start, end)}``, in start order.

    Reads only the ``run_id`` and ``timestamp`` columns, so a large store is listed quickly.
    """
    import pyarrow.parquet as pq

    from suite.results import result_files

    times: dict[str, list] = {}
    for f in result_files(results_dir):
        t = pq.read_table(f, columns=["run_id", "timestamp"])
        for rid, ts in zip(t.column("run_id").to_pylist(), t.column("timestamp").to_pylist()):
            lo_hi = times.setdefault(rid, [ts, ts])
            lo_hi[0], lo_hi[1] = min(lo_hi[0], ts), max(lo_hi[1], ts)
    return {rid: tuple(v) for rid, v in sorted(times.items(), key=lambda kv: (kv[1][0], kv[0]))}


def resolve_run(results_dir: str | Path, run_id: str | None) -> str:
    """``run_id`` if it is stored in ``results_dir``; with None, the latest run (the one whose last row is
    newest, as ``bench compare`` takes a folder's latest run).

    Raises:
        PublishError: no results in the folder, or no such run (the message lists the latest ones).
    """
    times = run_times(results_dir)
    if not times:
        raise PublishError(f"no results in {results_dir} (run `bench run` first, or give --results DIR)")
    if run_id is None:
        return max(times, key=lambda r: (times[r][1], r))
    if run_id not in times:
        latest = ", ".join(list(times)[-5:])
        raise PublishError(f"unknown run id {run_id!r} in {results_dir} (latest runs: {latest})")
    return run_id


def run_rows(results_dir: str | Path, run_id: str) -> list[dict]:
    """The cells of one run: the latest row of each cell (a resumed run may hold repeats), in a stable
    order (workload, sweep, target, profile, mode)."""
    from suite.results import cell_key, read_results

    df = read_results(results_dir, [run_id])
    if len(df) == 0:
        raise PublishError(f"unknown run id {run_id!r} in {results_dir}")
    latest: dict[tuple, dict] = {}
    for r in df.sort_values("timestamp", kind="stable").to_dict("records"):
        latest[cell_key(r)] = r
    rows = [latest[k] for k in sorted(latest)]
    check_keys(rows)
    return rows


def check_keys(rows: Iterable[dict]) -> None:
    """Two cells sharing a metric key (after sanitizing), or a key over MLflow's length, is an error."""
    seen: dict[str, dict] = {}
    for r in rows:
        p = cell_prefix(r)
        if len(p) + len("/latency_median_s") > MAX_KEY:
            raise PublishError(f"metric key {p!r} is longer than {MAX_KEY} characters")
        if p in seen:
            o = seen[p]
            raise PublishError(f"cells {o['target']} {o['params']} and {r['target']} {r['params']} of "
                               f"{r['workload']} share the metric key {p!r} after sanitizing")
        seen[p] = r


def distinct(rows: Iterable[dict], column: str) -> list[str]:
    """The distinct non-null values of a column, sorted, as strings."""
    return sorted({s for s in (text(r.get(column)) for r in rows) if s is not None})


def target_family(row: dict) -> str:
    """The framework family of a cell's target: its framework column, else the target id up to the first
    ``:``, ``>``, ``[`` or ``@`` (``torch>onnx@onnxruntime`` -> ``torch``)."""
    return text(row.get("framework")) or re.split(r"[:>\[@]", row["target"], maxsplit=1)[0]


# ---------------------------------------------------------------------------------------------------
# the per-cell table (artifacts and text summaries)

TABLE_COLUMNS = ("key", "workload", "params", "target", "profile", "mode", "status", "stage", "status_reason",
                 "latency_median_s", "max_abs_err", "max_rel_err", "noisy")


def cells_table(rows: list[dict]) -> list[dict]:
    """One dict per cell with :data:`TABLE_COLUMNS` (JSON-ready: floats or None, strings)."""
    out = []
    for r in rows:
        reason = (text(r.get("status_reason")) or "").strip().splitlines()
        noisy = r.get("noisy")
        out.append({"key": cell_prefix(r), "workload": r["workload"], "params": r["params"], "target": r["target"],
                    "profile": r["profile"], "mode": r.get("mode") or "inference", "status": r["status"],
                    "stage": text(r.get("stage")), "status_reason": reason[0][:300] if reason else None,
                    "latency_median_s": num(r.get("latency_median_s")), "max_abs_err": num(r.get("max_abs_err")),
                    "max_rel_err": num(r.get("max_rel_err")),
                    "noisy": None if text(noisy) is None else bool(noisy)})
    return out


def status_counts(rows: list[dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    return dict(sorted(counts.items()))


def markdown_summary(run_id: str, rows: list[dict]) -> str:
    """A Markdown summary of one run: where and what it ran, then one table line per cell."""
    first = rows[0] if rows else {}
    counts = ", ".join(f"{n} {s}" for s, n in status_counts(rows).items())
    head = [f"### bench run `{run_id}`", "",
            f"host `{text(first.get('host')) or '?'}` ({text(first.get('cpu_model')) or '?'}), "
            f"suite {text(first.get('suite_version')) or '?'}, commit `{(text(first.get('git_commit')) or '?')[:12]}`",
            "", f"**{len(rows)} cells: {counts}**", "",
            "| cell | status | median ms | max abs err | max rel err |", "|---|---|---|---|---|"]

    def fmt(x, scale=1.0, spec=".4g"):
        return "-" if x is None else format(x * scale, spec)

    for c in cells_table(rows):
        status = c["status"] + (f" ({c['stage']})" if c["stage"] else "") + (" ~noisy" if c["noisy"] else "")
        head.append(f"| `{c['key']}` | {status} | {fmt(c['latency_median_s'], 1e3, '.4f')} | "
                    f"{fmt(c['max_abs_err'], spec='.2e')} | {fmt(c['max_rel_err'], spec='.2e')} |")
    return "\n".join(head)
