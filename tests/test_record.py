"""The typed record (suite.record) and the Parquet schema generated from it (suite.results)."""
import dataclasses
import datetime as dt

import pandas as pd
import pyarrow as pa
import pytest

from suite import record, results
from suite.record import Identity, Outcome, Record, Result, Timing

# The contract: every column of the schema before the record was typed (schema 2 with `variant`,
# `git show HEAD~2:suite/results.py`), with its type and nullability. The schema may only grow.
_S, _F, _I32, _I64, _B = pa.string(), pa.float64(), pa.int32(), pa.int64(), pa.bool_()
CONTRACT = [
    ("run_id", _S, False), ("timestamp", pa.timestamp("us", tz="UTC"), False), ("schema_version", _I32, False),
    ("suite_version", _S, True), ("git_commit", _S, True), ("host", _S, True), ("cpu_model", _S, True),
    ("cpu_count", _I32, True), ("affinity", pa.list_(_I32), True), ("python_version", _S, True),
    ("platform", _S, True), ("workload", _S, False), ("workload_hash", _S, True), ("params", _S, False),
    ("batch_size", _I64, True), ("target", _S, False), ("framework", _S, True), ("framework_version", _S, True),
    ("format", _S, True), ("runtime", _S, True), ("variant", _S, True), ("runtime_version", _S, True),
    ("profile", _S, False), ("device", _S, True), ("threads", _I32, True), ("dtype", _S, True),
    ("layout", _S, True), ("mode", _S, False), ("status", _S, False), ("status_reason", _S, True),
    ("max_abs_err", _F, True), ("max_rel_err", _F, True), ("cosine", _F, True), ("mismatch_fraction", _F, True),
    ("top1_agreement", _F, True), ("rtol", _F, True), ("atol", _F, True), ("first_call_s", _F, True),
    ("compile_s", _F, True), ("export_s", _F, True), ("latency_median_s", _F, True), ("latency_mean_s", _F, True),
    ("latency_p90_s", _F, True), ("latency_p99_s", _F, True), ("latency_iqr_s", _F, True),
    ("latency_ci_low_s", _F, True), ("latency_ci_high_s", _F, True), ("n_samples", _I32, True),
    ("loops", _I64, True), ("unstable", _B, True), ("stop_reason", _S, True), ("samples_s", pa.list_(_F), True),
    ("throughput", _F, True), ("peak_rss_bytes", _I64, True), ("device_peak_bytes", _I64, True),
    ("artifact_bytes", _I64, True), ("flops", _I64, True), ("versions", _S, True), ("thread_settings", _S, True),
    ("wall_s", _F, True), ("loss", _F, True), ("loss_abs_err", _F, True), ("grad_max_abs_err", _F, True),
    ("grad_cosine", _F, True), ("param_max_abs_err", _F, True), ("step_peak_bytes", _I64, True),
    ("step_extra_bytes", _I64, True),
]
NEW = {"stage": (_S, True), "measure_s": (pa.float64(), True), "host_busy_start": (pa.float64(), True),
       "host_load_start": (pa.float64(), True),
       # the host's state while a cell was timed (suite.hoststate), its noisy flag and re-measurements
       "host_busy": (pa.float64(), True), "host_busy_all": (pa.float64(), True), "host_steal": (pa.float64(), True),
       "host_runqueue": (pa.int32(), True),
       "cpu_mhz": (pa.float64(), True), "noisy": (pa.bool_(), True), "noisy_reason": (_S, True),
       "attempts": (pa.int32(), True), "attempts_json": (_S, True), "lock_wait_s": (pa.float64(), True),
       # the roofline of a timed inference cell (suite.roofline, suite.peak)
       "achieved_flops_per_s": (_F, True), "arithmetic_intensity": (_F, True), "peak_flops_per_s": (_F, True),
       "peak_bytes_per_s": (_F, True), "peak_flops_library": (_S, True), "roofline_fraction": (_F, True),
       # where a failing cell leaves the reference (--diagnose: suite.diagnose)
       "diagnosis_culprit": (_S, True), "diagnosis_op": (_S, True), "diagnosis_own_err": (_F, True),
       "diagnosis_inherited_err": (_F, True), "diagnosis_summary": (_S, True), "diagnosis_bundle": (_S, True),
       # which kind of workload the row came from: graph, or a source: model's framework (suite.sources)
       "source": (_S, True), "reference_dtype": (_S, True),
       # where the cell ran and when it held its device (a cluster run: suite.cluster; filled by local runs too)
       "node_id": (_S, True), "cell_started": (pa.timestamp("us", tz="UTC"), True),
       "cell_finished": (pa.timestamp("us", tz="UTC"), True)}
# (columns added since, with their type)


def identity(**kw) -> Identity:
    base = dict(run_id="r", timestamp=dt.datetime(2026, 1, 2, tzinfo=dt.timezone.utc), workload="mlp",
                params='{"batch": 1}', target="test:numpy", profile="cpu", mode="inference")
    return Identity(**{**base, **kw})


def _leaf_names(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def test_contract_is_the_old_column_list():
    assert len(CONTRACT) == len({n for n, _, _ in CONTRACT}) == 67


@pytest.mark.parametrize("name,type_,nullable", CONTRACT, ids=[c[0] for c in CONTRACT])
def test_schema_keeps_every_old_column(name, type_, nullable):
    f = results.SCHEMA.field(name)
    assert f.type == type_ and f.nullable == nullable


def test_schema_is_old_columns_plus_new():
    assert set(results.COLUMNS) == {n for n, _, _ in CONTRACT} | set(NEW)
    for name, (type_, nullable) in NEW.items():
        assert results.SCHEMA.field(name).type == type_ and results.SCHEMA.field(name).nullable == nullable


def test_schema_is_generated_from_the_dataclasses():
    cols = record.columns()
    assert [c.name for c in cols] == list(results.COLUMNS)
    assert len(set(results.COLUMNS)) == len(results.COLUMNS)  # no column in two groups
    groups = [Identity, *(type(getattr(Result(outcome=Outcome(status="pass")), f.name))
                          for f in dataclasses.fields(Result))]
    assert [n for g in groups for n in _leaf_names(g)] == list(results.COLUMNS)
    for c in cols:
        f = results.SCHEMA.field(c.name)
        assert f.type == results.ARROW_TYPES[c.arrow] and f.nullable == c.nullable
        assert c.doc and f.metadata[b"doc"] == c.doc.encode()
    assert set(results.REQUIRED) == {c.name for c in cols if not c.nullable}
    assert set(results.REQUIRED) >= {"run_id", "workload", "params", "target", "profile", "mode", "status"}


def test_record_row_is_every_column_and_writes(tmp_path):
    res = Result(outcome=Outcome(status="pass", status_reason=""), timing=Timing(latency_median_s=1e-3, n_samples=3))
    rec = Record(identity=identity(), result=res)
    assert list(rec.row()) == list(results.COLUMNS)
    results.write_records([rec], tmp_path, "r", "a")
    df = results.read_results(tmp_path)
    assert df.iloc[0]["latency_median_s"] == 1e-3 and df.iloc[0]["schema_version"] == results.SCHEMA_VERSION
    assert pd.isna(df.iloc[0]["stage"])


def test_misspelt_field_fails_at_construction():
    with pytest.raises(TypeError, match="latency_median"):
        Timing(latency_median=1.0)
    with pytest.raises(TypeError):
        identity(wokload="mlp")


def test_records_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Outcome(status="pass").status = "fail"


def test_missing_required_fields_fail():
    with pytest.raises(TypeError, match="status"):
        Outcome()
    with pytest.raises(TypeError, match="target"):
        Identity(run_id="r", workload="mlp", params="{}", profile="cpu")
    row = Record(identity=identity(), result=Result(outcome=Outcome(status="pass"))).row()
    row["target"] = None
    with pytest.raises(ValueError, match="missing required column.*target"):
        results.records_to_table([row])


def test_records_to_table_rejects_unknown_key():
    row = Record(identity=identity(), result=Result(outcome=Outcome(status="pass"))).row()
    with pytest.raises(ValueError, match="unknown result column.*stages"):
        results.records_to_table([{**row, "stages": "build"}])


def test_result_wire_round_trip():
    res = Result(outcome=Outcome(status="nan", status_reason="NaN", stage="verify"),
                 timing=Timing(first_call_s=0.5, samples_s=[1.0, 2.0]))
    row = res.row()
    assert row == {"status": "nan", "status_reason": "NaN", "stage": "verify", "first_call_s": 0.5,
                   "samples_s": [1.0, 2.0]}
    assert Result.from_row(row) == res
    with pytest.raises(ValueError, match="unknown result column.*first_call"):
        Result.from_row({"status": "pass", "first_call": 0.5})
    with pytest.raises(ValueError, match="unknown result column.*workload"):  # identity is not a result
        Result.from_row({"status": "pass", "workload": "mlp"})
    with pytest.raises(ValueError, match="missing required column.*status"):
        Result.from_row({"first_call_s": 0.5})


def test_stage_values_are_the_documented_set():
    assert set(record.STAGES) == {"export", "build", "load", "verify", "time"}
    for stage in record.STAGES:
        assert Outcome(status="error", stage=stage).stage == stage
    with pytest.raises(ValueError, match="stage 'compile'"):
        Outcome(status="error", stage="compile")


def test_every_field_the_worker_path_emits_is_a_column():
    """The dicts other modules produce and the worker turns into groups are columns of their group."""
    from suite import engine, verify

    timing = engine.summarize([1e-3, 1.1e-3, 0.9e-3], loops=4)
    Timing(**timing.as_record(), throughput=timing.throughput(1))
    num = verify.Numerics(status="pass").as_dict()
    record.Numerics(**{k: v for k, v in num.items() if k not in ("status", "reason")})


def test_run_metadata_is_identity():
    from suite import envinfo

    rec = identity(**envinfo.run_metadata())
    assert rec.cpu_count >= 1
