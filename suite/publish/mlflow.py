"""One results run -> one MLflow run (`bench publish mlflow`, `bench run --mlflow`).

What is logged (keys: :mod:`suite.publish.common`):

- **params**: the run id, suite version, git commit, host, CPU, Python, platform, the profiles, workloads,
  targets, modes, devices and dtypes of the run, and ``version.<distribution>`` for every framework or
  runtime version the cells reported (their ``versions`` JSON, framework_version and runtime_version).
  A column with several values in one run is logged as its sorted values joined by ``,``.
- **metrics**, per cell ``<cell key>/<column>`` for each of :data:`suite.publish.common.CELL_METRICS`
  the cell has (latency median / p90 / CI, throughput, first call, compile, max_abs_err, max_rel_err,
  train errors, peak RSS), and ``<cell key>/pass``: 1 for pass, 0 for any other status of a cell that
  ran (skipped and unsupported cells have none). Run-level: ``cells/total``, ``cells/<status>``,
  ``host/busy_start``, ``host/load_start``. Each metric is stamped with its row's time, step 0.
- **tags**: ``bench.run_id`` (the idempotence key), ``bench.workloads``, ``bench.targets``,
  ``bench.frameworks`` (target families), ``bench.formats``, ``bench.runtimes``, ``bench.profiles``,
  ``bench.devices``, ``bench.modes``, ``bench.status`` (ok / failed), ``bench.cells`` (counts),
  ``bench.results`` (the results folder) and ``mlflow.source.git.commit``. The run name is the run id.
- **artifacts**: ``results/`` (the run's Parquet files), ``cells.csv`` and ``cells.json`` (status,
  stage, reason, median and errors of every cell), ``summary.md``, and ``dashboard/`` (the static site)
  when one is given.

Idempotence: a results run already published to the experiment (an MLflow run tagged ``bench.run_id``,
status FINISHED) is not logged again: the existing run is reported. ``force=True`` logs it again and
then deletes the earlier MLflow run(s) (MLflow's soft delete: restorable until ``mlflow gc``), so the
experiment never holds two copies. An earlier attempt that did not finish (RUNNING or FAILED) is
replaced without ``force``.

Tracking URI: the one given, else ``$MLFLOW_TRACKING_URI``, else :func:`default_tracking_uri` (a SQLite
store ``mlflow.db`` in the checkout, artifacts in ``mlartifacts/`` beside it: MLflow 3.17 refuses file
stores unless ``MLFLOW_ALLOW_FILE_STORE=true``, and the artifact root is pinned so it never depends on
the current directory). An http(s) server is asked for ``/health`` first, so one that does not answer is
one error line, not minutes of MLflow's retries.
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from suite.publish.common import (CELL_METRICS, NOT_RUN, PublishError, cells_table, distinct, markdown_summary,
                                  metric_key, num, resolve_run, run_rows, sanitize, status_counts, target_family,
                                  text)

DEFAULT_EXPERIMENT = "bench-suite"
RUN_ID_TAG = "bench.run_id"
INSTALL = "pip install -e '.[mlflow]'"
_RUN_PARAMS = ("suite_version", "git_commit", "host", "cpu_model", "cpu_count", "python_version", "platform")
_LIST_PARAMS = (("profiles", "profile"), ("workloads", "workload"), ("targets", "target"), ("modes", "mode"),
                ("devices", "device"), ("dtypes", "dtype"))
_LIST_TAGS = (("bench.workloads", "workload"), ("bench.targets", "target"), ("bench.formats", "format"),
              ("bench.runtimes", "runtime"), ("bench.profiles", "profile"), ("bench.devices", "device"),
              ("bench.modes", "mode"))
_MAX_VALUE = 6000  # MLflow's limit on a param value (tags allow more; one limit for both)


def default_tracking_uri() -> str:
    """``sqlite:///<checkout>/mlflow.db``: a local store in the checkout this package lives in."""
    return "sqlite:///" + str(Path(__file__).resolve().parents[2] / "mlflow.db")


def resolve_tracking_uri(uri: str | None) -> str:
    """The URI given, else ``$MLFLOW_TRACKING_URI``, else :func:`default_tracking_uri`."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()


def _sqlite_artifact_root(uri: str, default: bool) -> str | None:
    """For a SQLite store, ``mlartifacts/`` beside the database file (MLflow would otherwise put artifacts
    under ./mlruns of whatever the current directory is). Checks the database's folder exists."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///"):]
    if path in ("", ":memory:"):
        return None
    db = Path(path).resolve()
    if default:
        db.parent.mkdir(parents=True, exist_ok=True)
    elif not db.parent.is_dir():
        raise PublishError(f"tracking URI {uri!r}: folder {db.parent} does not exist")
    return (db.parent / "mlartifacts").as_uri()


@contextlib.contextmanager
def _quiet_logs():
    """MLflow and alembic log INFO lines when they create a store's tables; bench prints its own line."""
    loggers = [logging.getLogger(n) for n in ("mlflow", "alembic")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0] if lines else ''}"[:300]


def _check_reachable(uri: str, timeout_s: float = 10.0) -> None:
    """An http(s) tracking server that does not answer: one line now, rather than MLflow's retries with
    back-off (minutes) for every request. Any HTTP answer, an error status included, counts as reachable."""
    import urllib.error
    import urllib.request

    if not uri.startswith(("http://", "https://")):
        return
    try:
        urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout_s).close()
    except urllib.error.HTTPError:
        pass
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        raise PublishError(f"tracking URI {uri!r}: the server does not answer ({reason})") from None


@dataclass(frozen=True)
class Tracker:
    """A connection to one experiment of one tracking store (:func:`connect`)."""

    client: Any
    uri: str
    experiment: str
    experiment_id: str


def connect(tracking_uri: str | None = None, experiment: str = DEFAULT_EXPERIMENT) -> Tracker:
    """Opens the tracking store and the experiment (created when missing).

    `bench run --mlflow` calls this before the run, so a bad URI or a missing MLflow stops it before
    any cell is timed.

    Raises:
        PublishError: MLflow not installed, a bad or unreachable tracking URI, a deleted experiment.
    """
    # MLflow 3 reports usage to its telemetry endpoint unless told not to; the suite never uses the network
    # beyond the tracking URI the user gave (the user's own setting, if any, is kept)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    try:
        from mlflow.tracking import MlflowClient
    except ImportError as e:
        raise PublishError(f"MLflow is not installed ({e.name or e}): {INSTALL}") from None
    uri = resolve_tracking_uri(tracking_uri)
    artifact_root = _sqlite_artifact_root(uri, default=uri == default_tracking_uri())
    _check_reachable(uri)
    try:
        with _quiet_logs():
            client = MlflowClient(tracking_uri=uri)
            exp = client.get_experiment_by_name(experiment)
            if exp is None:
                exp_id = client.create_experiment(experiment, artifact_location=artifact_root)
            elif exp.lifecycle_stage != "active":
                raise PublishError(f"experiment {experiment!r} is deleted in {uri}: restore it "
                                   "(mlflow experiments restore) or give another --experiment")
            else:
                exp_id = exp.experiment_id
    except PublishError:
        raise
    except ImportError as e:  # mlflow-skinny without sqlalchemy / alembic, for a database store
        raise PublishError(f"tracking URI {uri!r} needs {e.name or e}: {INSTALL}") from None
    except Exception as e:  # noqa: BLE001 - MlflowException, sqlalchemy, requests: one line for people
        if "MLFLOW_ALLOW_FILE_STORE" in str(e):  # MLflow >= 3.x refuses ./mlruns-style stores by default
            raise PublishError(f"tracking URI {uri!r}: MLflow no longer accepts file stores: use a database store "
                               "such as sqlite:///PATH/mlflow.db (or set MLFLOW_ALLOW_FILE_STORE=true)") from None
        raise PublishError(f"tracking URI {uri!r}: {_first_line(e)}") from None
    return Tracker(client, uri, experiment, exp_id)


@dataclass(frozen=True)
class Published:
    """What :func:`publish` did."""

    run_id: str
    mlflow_run_id: str
    tracker: Tracker
    created: bool              # False: already published, nothing logged
    replaced: tuple[str, ...]  # MLflow runs of the same results run deleted after this one was logged
    metrics: int = 0
    params: int = 0
    artifacts: tuple[str, ...] = ()

    def line(self) -> str:
        where = f"MLflow run {self.mlflow_run_id} in experiment {self.tracker.experiment!r} ({self.tracker.uri})"
        if not self.created:
            return (f"mlflow: run {self.run_id} is already published as {where}; --force logs it again "
                    "(and deletes that one)")
        note = f"; replaced {', '.join(self.replaced)}" if self.replaced else ""
        return (f"mlflow: run {self.run_id} -> {where}: {self.metrics} metrics, {self.params} params, "
                f"artifacts {', '.join(self.artifacts)}{note}")


def _ms(ts) -> int:
    return int(ts.timestamp() * 1000)


def _joined(values: list[str]) -> str:
    return ",".join(values)[:_MAX_VALUE]


def run_params(run_id: str, rows: list[dict]) -> dict[str, str]:
    """The MLflow params of a run (see the module docstring)."""
    params = {"run_id": run_id}
    for col in _RUN_PARAMS:
        if distinct(rows, col):
            params[col] = _joined(distinct(rows, col))
    for name, col in _LIST_PARAMS:
        params[name] = _joined(distinct(rows, col))
    versions: dict[str, set[str]] = {}
    for r in rows:
        reported = json.loads(text(r.get("versions")) or "{}")
        for name_col, ver_col in (("framework", "framework_version"), ("runtime", "runtime_version")):
            name, ver = text(r.get(name_col)), text(r.get(ver_col))
            if name and ver:
                reported.setdefault(name, ver)
        for dist, ver in reported.items():
            if ver is not None:
                versions.setdefault(dist, set()).add(str(ver))
    for dist in sorted(versions):
        params[f"version.{sanitize(dist)}"] = _joined(sorted(versions[dist]))
    return params


def run_tags(run_id: str, rows: list[dict], results_dir: str | Path) -> dict[str, str]:
    """The MLflow tags of a run (see the module docstring)."""
    from suite.verify import GOOD_STATUSES

    tags = {RUN_ID_TAG: run_id, "bench.results": str(Path(results_dir).resolve()),
            "bench.frameworks": _joined(sorted({target_family(r) for r in rows})),
            "bench.status": "ok" if all(r["status"] in GOOD_STATUSES for r in rows) else "failed",
            "bench.cells": ", ".join(f"{n} {s}" for s, n in status_counts(rows).items())}
    for tag, col in _LIST_TAGS:
        tags[tag] = _joined(distinct(rows, col))
    commits = distinct(rows, "git_commit")
    if len(commits) == 1:
        tags["mlflow.source.git.commit"] = commits[0]
    return tags


def run_metrics(rows: list[dict]) -> list[tuple[str, float, int]]:
    """(key, value, timestamp ms) of every metric of a run (see the module docstring)."""
    out = []
    for r in rows:
        ts = _ms(r["timestamp"])
        for col in CELL_METRICS:
            v = num(r.get(col))
            if v is not None:
                out.append((metric_key(r, col), v, ts))
        if r["status"] not in NOT_RUN:
            out.append((metric_key(r, "pass"), 1.0 if r["status"] == "pass" else 0.0, ts))
    start = min(_ms(r["timestamp"]) for r in rows)
    out.append(("cells/total", float(len(rows)), start))
    out += [(f"cells/{sanitize(s)}", float(n), start) for s, n in status_counts(rows).items()]
    for col, key in (("host_busy_start", "host/busy_start"), ("host_load_start", "host/load_start")):
        vals = [num(r.get(col)) for r in rows if num(r.get(col)) is not None]
        if vals:
            out.append((key, vals[0], start))
    return out


def _csv(table: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(table[0]) if table else ["key"], lineterminator="\n")
    w.writeheader()
    w.writerows(table)
    return buf.getvalue()


def _existing(tracker: Tracker, run_id: str) -> list:
    return tracker.client.search_runs([tracker.experiment_id], f"tags.`{RUN_ID_TAG}` = '{run_id}'",
                                      order_by=["attributes.start_time DESC"])


def publish(results_dir: str | Path, run_id: str | None = None, tracking_uri: str | None = None,
            experiment: str = DEFAULT_EXPERIMENT, force: bool = False, dashboard: str | Path | None = None,
            tracker: Tracker | None = None) -> Published:
    """Logs one results run as one MLflow run.

    Args:
        results_dir: the results folder.
        run_id: the run to publish; None: the latest (:func:`suite.publish.common.resolve_run`).
        tracking_uri: see :func:`resolve_tracking_uri` (ignored when ``tracker`` is given).
        experiment: the MLflow experiment (created when missing).
        force: log the run again even if it is already published (the earlier copy is then deleted).
        dashboard: a built dashboard folder to attach as ``dashboard/`` (None: none).
        tracker: an open connection (:func:`connect`), e.g. made before a run to check the URI early.
    Returns:
        what was done: :class:`Published`.
    Raises:
        PublishError: no such run, an empty folder, a bad tracking URI, MLflow missing, a failed upload.
    """
    run_id = resolve_run(results_dir, run_id)
    rows = run_rows(results_dir, run_id)
    tracker = tracker or connect(tracking_uri, experiment)
    client = tracker.client
    try:
        with _quiet_logs():
            existing = _existing(tracker, run_id)
    except Exception as e:  # noqa: BLE001
        raise PublishError(f"tracking URI {tracker.uri!r}: {_first_line(e)}") from None
    done = [r for r in existing if r.info.status == "FINISHED"]
    if done and not force:
        return Published(run_id, done[0].info.run_id, tracker, created=False, replaced=())
    from mlflow.entities import Metric, Param, RunTag

    params, tags, metrics = run_params(run_id, rows), run_tags(run_id, rows, results_dir), run_metrics(rows)
    start, end = min(_ms(r["timestamp"]) for r in rows), max(_ms(r["timestamp"]) for r in rows)
    with _quiet_logs():
        run = client.create_run(tracker.experiment_id, start_time=start, tags={RUN_ID_TAG: run_id},
                                run_name=run_id)
        mid = run.info.run_id
        try:
            client.log_batch(mid, metrics=[Metric(k, v, ts, 0) for k, v, ts in metrics],
                             params=[Param(k, v) for k, v in params.items()],
                             tags=[RunTag(k, v) for k, v in tags.items()])
            artifacts = _log_artifacts(client, mid, results_dir, run_id, rows, dashboard)
            client.set_terminated(mid, "FINISHED", end_time=max(end, start))
        except BaseException as e:
            with contextlib.suppress(Exception):
                client.set_terminated(mid, "FAILED")
            if isinstance(e, Exception):
                raise PublishError(f"publishing run {run_id} to {tracker.uri}: {_first_line(e)}") from None
            raise
        replaced = tuple(r.info.run_id for r in existing)
        for old in replaced:
            client.delete_run(old)
    return Published(run_id, mid, tracker, created=True, replaced=replaced, metrics=len(metrics),
                     params=len(params), artifacts=artifacts)


def _log_artifacts(client, mid: str, results_dir, run_id: str, rows: list[dict], dashboard) -> tuple[str, ...]:
    from suite.results import result_files

    for f in result_files(results_dir, [run_id]):
        client.log_artifact(mid, str(f), "results")
    table = cells_table(rows)
    client.log_text(mid, _csv(table), "cells.csv")
    client.log_dict(mid, {"run_id": run_id, "cells": table}, "cells.json")
    client.log_text(mid, markdown_summary(run_id, rows) + "\n", "summary.md")
    names = ["results/", "cells.csv", "cells.json", "summary.md"]
    if dashboard is not None:
        client.log_artifacts(mid, str(dashboard), "dashboard")
        names.append("dashboard/")
    return tuple(names)
