"""The results store: the only module that knows the Parquet schema.

Layout: flat files ``results/<run_id>__<part>.parquet``, one per worker group (``part``). Flat
files rather than hive directories (``run_id=.../``) so that readers do not turn ``run_id`` into a
dictionary/category column and every file carries all its columns. Any of these reads the store:

    pandas.read_parquet("results/")
    pyarrow.dataset.dataset("results/", format="parquet")
    duckdb: SELECT * FROM read_parquet('results/*.parquet')

Writes are atomic: a temp file named ``.<run_id>__<part>.<random>.tmp`` in the same directory is
written, fsynced and ``os.replace``d into place. Readers skip it (pyarrow ignores names starting
with ``.``; the ``*.parquet`` glob does not match ``.tmp``), so a crash never leaves a half file
that a reader would see.

The columns are the fields of the dataclasses in :mod:`suite.record` (the typed, frozen record of a
cell); :data:`SCHEMA` is generated from them. ``schema_version`` is stored in every row; bump
``SCHEMA_VERSION`` when a column changes meaning or type. :func:`read_results` conforms older files
to the current schema (missing columns -> null).
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import re
import secrets
import tempfile
from pathlib import Path
from typing import Any, Iterable, Mapping

import pyarrow as pa
import pyarrow.parquet as pq

from suite.record import Record, columns

SCHEMA_VERSION = 2  # 2: runtime names the executing software; variant says how (was: one column for both); stage

# The Arrow type of each type name used by suite.record's columns.
ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(), "float64": pa.float64(), "int32": pa.int32(), "int64": pa.int64(), "bool": pa.bool_(),
    "timestamp[us, UTC]": pa.timestamp("us", tz="UTC"),
    "list<int32>": pa.list_(pa.int32()), "list<float64>": pa.list_(pa.float64()),
}


def _schema() -> pa.Schema:
    """The Parquet schema, generated from suite.record's dataclasses (their order, types, nullability
    and meaning, kept as each field's ``doc`` metadata). Identity columns that are not nullable name the
    cell; ``status`` is never null either."""
    fields = [pa.field(c.name, ARROW_TYPES[c.arrow], nullable=c.nullable, metadata={"doc": c.doc})
              for c in columns()]
    return pa.schema(fields, metadata={"bench.schema_version": str(SCHEMA_VERSION)})


SCHEMA = _schema()
COLUMNS = tuple(SCHEMA.names)
REQUIRED = tuple(f.name for f in SCHEMA if not f.nullable)
_JSON_COLUMNS = ("params", "versions", "thread_settings")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def new_run_id() -> str:
    """A sortable, unique run id, e.g. ``20261122T101500Z-3fa9c1`` (UTC start time + 6 hex)."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def canonical_params(params: Mapping[str, Any] | str | None) -> str:
    """The stored form of sweep values: a JSON object with sorted keys, e.g. ``'{"batch": 32}'``.

    Args:
        params: a mapping, or a JSON string of one.
    Returns:
        the canonical JSON string.
    """
    if params is None:
        params = {}
    if isinstance(params, str):
        params = json.loads(params)
    return json.dumps(dict(params), sort_keys=True)


def cell_key(record: Mapping[str, Any]) -> tuple[str, str, str, str, str]:
    """Identity of a cell, used by ``--resume`` to skip cells already stored.

    Args:
        record: a record dict (or a results row).
    Returns:
        (workload, canonical params, target, profile, mode).
    """
    return (record["workload"], canonical_params(record.get("params")), record["target"],
            record["profile"], record.get("mode") or "inference")


def _normalize(rec: Mapping[str, Any] | Record, now: _dt.datetime) -> dict[str, Any]:
    out = rec.row() if isinstance(rec, Record) else dict(rec)
    if out.get("schema_version") is None:
        out["schema_version"] = SCHEMA_VERSION
    if out.get("mode") is None:
        out["mode"] = "inference"
    if out.get("timestamp") is None:
        out["timestamp"] = now
    ts = out["timestamp"]
    if isinstance(ts, str):
        ts = _dt.datetime.fromisoformat(ts)
    if isinstance(ts, _dt.datetime) and ts.tzinfo is None:
        ts = ts.replace(tzinfo=_dt.timezone.utc)  # naive datetimes are taken as UTC
    out["timestamp"] = ts
    out["params"] = canonical_params(out.get("params"))
    for col in _JSON_COLUMNS[1:]:
        if out.get(col) is not None and not isinstance(out[col], str):
            out[col] = json.dumps(out[col], sort_keys=True, default=str)
    if out.get("samples_s") is not None:
        out["samples_s"] = [float(x) for x in out["samples_s"]]
    if out.get("affinity") is not None:
        out["affinity"] = [int(x) for x in out["affinity"]]
    return out


def records_to_table(records: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Converts records to a table of the current schema.

    Missing keys become null; ``params`` / ``versions`` / ``thread_settings`` may be dicts (stored
    as JSON); ``schema_version``, ``mode`` ("inference") and ``timestamp`` (now) are filled in.

    Args:
        records: :class:`suite.record.Record` s, or dicts whose keys are column names.
    Returns:
        a pyarrow Table with :data:`SCHEMA`.
    Raises:
        ValueError: unknown keys, or a required column missing, named in the message.
    """
    now = _dt.datetime.now(_dt.timezone.utc)
    rows = [_normalize(r, now) for r in records]
    known = set(COLUMNS)
    unknown = sorted({k for r in rows for k in r} - known)
    if unknown:
        raise ValueError(f"unknown result column(s): {', '.join(unknown)}")
    for i, r in enumerate(rows):
        missing = [c for c in REQUIRED if r.get(c) is None]
        if missing:
            raise ValueError(f"record {i}: missing required column(s): {', '.join(missing)}")
    arrays = []
    for f in SCHEMA:
        try:
            arrays.append(pa.array([r.get(f.name) for r in rows], type=f.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError) as e:
            raise ValueError(f"column {f.name}: expected {f.type}: {e}") from None
    return pa.Table.from_arrays(arrays, schema=SCHEMA)


def result_path(results_dir: str | Path, run_id: str, part: str) -> Path:
    """Where :func:`write_records` puts one part of a run: ``<dir>/<run_id>__<part>.parquet``."""
    for what, v in (("run_id", run_id), ("part", part)):
        if not _NAME_RE.match(v) or "__" in v:
            raise ValueError(f"{what} {v!r}: expected letters, digits, '.', '-', '_' (no '__')")
    return Path(results_dir) / f"{run_id}__{part}.parquet"


def write_records(records: Iterable[Mapping[str, Any]], results_dir: str | Path, run_id: str,
                  part: str) -> Path:
    """Writes records atomically as one Parquet file; an existing file of the same part is replaced.

    Args:
        records: record dicts (their ``run_id`` defaults to ``run_id`` and must match it).
        results_dir: the results folder (created if missing).
        run_id: the run these records belong to.
        part: distinguishes files of one run, e.g. the worker group ``torch-cpu-0``.
    Returns:
        the path written.
    """
    path = result_path(results_dir, run_id, part)
    recs = []
    for r in records:
        r = r.row() if isinstance(r, Record) else dict(r)
        if r.get("run_id") is None:
            r["run_id"] = run_id
        if r["run_id"] != run_id:
            raise ValueError(f"record run_id {r['run_id']!r} differs from {run_id!r}")
        recs.append(r)
    table = records_to_table(recs)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            pq.write_table(table, f, compression="zstd")
            f.flush()
            os.fsync(f.fileno())  # the data must be on disk before the rename makes it visible
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def result_files(results_dir: str | Path, run_ids: Iterable[str] | None = None) -> list[Path]:
    """Finished result files (temp files skipped), sorted, optionally only of some runs."""
    d = Path(results_dir)
    if not d.is_dir():
        return []
    files = sorted(p for p in d.glob("*.parquet") if not p.name.startswith((".", "_")))
    if run_ids is not None:
        wanted = set(run_ids)
        files = [p for p in files if p.name.split("__", 1)[0] in wanted]
    return files


def _conform(table: pa.Table) -> pa.Table:
    """Casts a table read from disk to the current schema; absent columns become null."""
    cols = []
    for f in SCHEMA:
        if f.name in table.column_names:
            cols.append(table.column(f.name).cast(f.type))
        else:
            cols.append(pa.nulls(table.num_rows, type=f.type))
    return pa.Table.from_arrays(cols, schema=SCHEMA)


def read_table(results_dir: str | Path, run_ids: Iterable[str] | None = None) -> pa.Table:
    """All stored results as one pyarrow Table of the current schema.

    Args:
        results_dir: the results folder.
        run_ids: only these runs; all when None.
    Returns:
        the table (zero rows when nothing is stored).
    """
    tables = [_conform(pq.read_table(p)) for p in result_files(results_dir, run_ids)]
    if not tables:
        return SCHEMA.empty_table()
    return pa.concat_tables(tables)


def read_results(results_dir: str | Path = "results", run_ids: Iterable[str] | None = None):
    """All stored results as a pandas DataFrame.

    Integer and boolean columns use pandas' nullable dtypes (Int32/Int64/boolean) so a missing
    value does not turn them into float or object; ``samples_s`` holds one float64 array per row.

    Args:
        results_dir: the results folder.
        run_ids: only these runs; all when None.
    Returns:
        a DataFrame with every schema column (empty when nothing is stored).
    """
    import pandas as pd

    mapping = {pa.int32(): pd.Int32Dtype(), pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}
    return read_table(results_dir, run_ids).to_pandas(types_mapper=mapping.get)


def stored_keys(results_dir: str | Path, run_id: str, statuses: Iterable[str] | None = None) -> set[tuple]:
    """Cell keys already stored for a run (for ``--resume``).

    Args:
        results_dir: the results folder.
        run_id: the run being resumed.
        statuses: only rows with these statuses (e.g. exclude ``crashed`` to retry it); all when None.
    Returns:
        a set of :func:`cell_key` tuples.
    """
    cols = ["workload", "params", "target", "profile", "mode", "status"]
    table = read_table(results_dir, [run_id]).select(cols)
    keep = set(statuses) if statuses is not None else None
    return {cell_key(r) for r in table.to_pylist() if keep is None or r["status"] in keep}
