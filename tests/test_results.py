"""Results store: schema, atomic writes, readers, resume keys; and run metadata."""
import datetime as dt
import re

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pytest

from suite import envinfo, results


def record(**kw):
    rec = {"workload": "mlp", "params": {"batch": 32}, "target": "torch:eager", "profile": "cpu",
           "status": "pass", "batch_size": 32, "framework": "torch", "threads": 2,
           "latency_median_s": 1.5e-4, "n_samples": 3, "loops": 10, "unstable": False,
           "samples_s": [1.4e-4, 1.5e-4, 1.6e-4], "versions": {"torch": "2.13.0"}}
    rec.update(kw)
    return rec


def test_round_trip_dtypes(tmp_path):
    run_id = results.new_run_id()
    recs = [record(), record(target="jax:jit", framework="jax", unstable=None, n_samples=None,
                             samples_s=None, status="error", status_reason="boom")]
    results.write_records(recs, tmp_path, run_id, "torch")
    df = results.read_results(tmp_path)
    assert list(df.columns) == list(results.COLUMNS)
    assert len(df) == 2
    assert str(df["timestamp"].dtype) == "datetime64[us, UTC]"
    assert df["latency_median_s"].dtype == "float64"
    assert str(df["n_samples"].dtype) == "Int32" and str(df["loops"].dtype) == "Int64"
    assert str(df["unstable"].dtype) == "boolean"
    row = df.iloc[0]
    assert row["run_id"] == run_id and row["schema_version"] == results.SCHEMA_VERSION
    assert row["mode"] == "inference"
    assert row["params"] == '{"batch": 32}'
    assert row["versions"] == '{"torch": "2.13.0"}'
    assert list(row["samples_s"]) == [1.4e-4, 1.5e-4, 1.6e-4]
    assert df.iloc[1]["samples_s"] is None and pd.isna(df.iloc[1]["unstable"])


def test_schema_types():
    s = results.SCHEMA
    assert s.field("samples_s").type == pa.list_(pa.float64())
    assert s.field("timestamp").type == pa.timestamp("us", tz="UTC")
    assert not s.field("run_id").nullable and s.field("latency_median_s").nullable


def test_atomic_write_leaves_no_temp_files(tmp_path):
    path = results.write_records([record()], tmp_path, "r1", "a")
    assert path == tmp_path / "r1__a.parquet"
    assert [p.name for p in tmp_path.iterdir()] == ["r1__a.parquet"]


def test_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(ValueError):
        results.write_records([record(n_samples="many")], tmp_path, "r1", "a")
    assert list(tmp_path.iterdir()) == []


def test_pandas_and_pyarrow_read_the_directory(tmp_path):
    results.write_records([record()], tmp_path, "r1", "torch")
    results.write_records([record(target="jax:jit")], tmp_path, "r2", "jax")
    (tmp_path / ".r3__x.parquet.abc.tmp").write_bytes(b"half a file")  # a writer still running
    df = pd.read_parquet(tmp_path)
    assert sorted(df["target"]) == ["jax:jit", "torch:eager"]
    assert pads.dataset(tmp_path, format="parquet").to_table().num_rows == 2
    assert len(results.read_results(tmp_path)) == 2
    assert list(results.read_results(tmp_path, run_ids=["r2"])["target"]) == ["jax:jit"]


def test_read_empty_directory_has_columns(tmp_path):
    df = results.read_results(tmp_path / "missing")
    assert df.empty and list(df.columns) == list(results.COLUMNS)


def test_unknown_column_rejected():
    with pytest.raises(ValueError, match="unknown result column.*latency_median"):
        results.records_to_table([record(latency_median=1.0)])


def test_missing_required_column_rejected():
    rec = record()
    del rec["target"]
    with pytest.raises(ValueError, match="missing required column.*target"):
        results.records_to_table([rec])


def test_run_id_mismatch_rejected(tmp_path):
    with pytest.raises(ValueError, match="differs"):
        results.write_records([record(run_id="other")], tmp_path, "r1", "a")


def test_stored_keys(tmp_path):
    results.write_records([record(), record(params='{"batch": 1}', status="crashed")], tmp_path, "r1", "a")
    results.write_records([record(target="jax:jit")], tmp_path, "r2", "a")
    keys = results.stored_keys(tmp_path, "r1")
    assert keys == {("mlp", '{"batch": 32}', "torch:eager", "cpu", "inference"),
                    ("mlp", '{"batch": 1}', "torch:eager", "cpu", "inference")}
    assert results.cell_key(record()) in keys
    assert results.stored_keys(tmp_path, "r1", statuses=["pass"]) == {results.cell_key(record())}
    assert results.stored_keys(tmp_path, "nope") == set()


def test_timestamps_are_utc():
    naive = dt.datetime(2026, 1, 2, 3, 4, 5)
    table = results.records_to_table([record(timestamp=naive, run_id="r")])
    assert table.column("timestamp")[0].as_py() == naive.replace(tzinfo=dt.timezone.utc)


def test_new_run_id_format():
    assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{6}", results.new_run_id())


def test_run_metadata_fits_schema(tmp_path):
    meta = envinfo.run_metadata()
    assert set(meta) <= set(results.COLUMNS)
    assert meta["cpu_count"] >= 1 and meta["affinity"]
    results.records_to_table([record(run_id="r", **meta)])


def test_git_commit(tmp_path):
    commit = envinfo.git_commit()
    assert commit is None or re.fullmatch(r"[0-9a-f]{40}", commit)
    assert envinfo.git_commit(tmp_path) is None
    git = tmp_path / "repo" / ".git"
    (git / "refs" / "heads").mkdir(parents=True)
    (git / "HEAD").write_text("ref: refs/heads/main\n")
    (git / "packed-refs").write_text("# pack-refs\n" + "a" * 40 + " refs/heads/main\n")
    assert envinfo.git_commit(tmp_path / "repo") == "a" * 40


def test_package_versions():
    v = envinfo.package_versions(["numpy", "surely-not-installed-dist"])
    assert v["numpy"] and v["surely-not-installed-dist"] is None
