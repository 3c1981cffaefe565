"""`bench publish mlflow|tensorboard` and `bench run --mlflow`: real round trips through a local MLflow store
(SQLite in tmp_path, read back with MlflowClient) and TensorBoard event files (read back with TensorBoard's
own event accumulator), on synthetic runs and on a real `bench run` of the NumPy test target."""
from __future__ import annotations

import datetime as dt
import json
import re
import socket
import subprocess
import sys
import types

import pytest

from conftest import REPO
from suite.cli import main
from suite.publish.common import PublishError, metric_key, run_rows
from suite.results import read_results, write_records

T0 = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.timezone.utc)
VERSIONS = {"numpy": "2.4.6", "torch": "2.13.0", "onnxruntime": "1.23.0"}


def _rec(run_id, target="torch:eager", batch=1, status="pass", median=1e-3, minute=0, mode="inference", **extra):
    ran = status == "pass"
    return {"run_id": run_id, "timestamp": T0 + dt.timedelta(minutes=minute), "workload": "mlp",
            "params": {"batch": batch},
            "target": target, "framework": target.split(":")[0].split(">")[0].split("[")[0], "profile": "cpu",
            "mode": mode, "status": status, "stage": None if ran else "verify",
            "status_reason": None if ran else "max abs err 3e-2 > atol", "suite_version": "0.1.0",
            "git_commit": "abc123", "host": "vm", "versions": VERSIONS, "latency_median_s": median if ran else None,
            "max_abs_err": 1e-7 if ran else 3e-2, "max_rel_err": 2e-7 if ran else 0.5, **extra}


def _run(results, run_id, minute=0, scale=1.0):
    recs = [_rec(run_id, "torch:eager", 1, median=1e-3 * scale, minute=minute),
            _rec(run_id, "torch>onnx@onnxruntime", 1, median=5e-4 * scale, minute=minute),
            _rec(run_id, "keras[jax]", 32, status="fail", minute=minute),
            _rec(run_id, "jax:jit", 1, status="skipped", minute=minute),
            _rec(run_id, "torch:eager", 1, median=3e-3 * scale, minute=minute, mode="train")]
    write_records(recs, results, run_id, "part-0")
    return recs


def _medians(results, run_id):
    df = read_results(results, [run_id])
    return {metric_key(r, "latency_median_s"): r["latency_median_s"] for r in df.to_dict("records")
            if r["latency_median_s"] == r["latency_median_s"] and r["latency_median_s"] is not None}


# --- keys ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("target,params,mode,key", [
    ("torch:eager", {"batch": 32}, "inference", "mlp/batch:32/torch:eager/cpu/latency_median_s"),
    ("torch>onnx@onnxruntime", {"batch": 1}, "inference",
     "mlp/batch:1/torch.to.onnx.at.onnxruntime/cpu/latency_median_s"),
    ("tensorflow>tflite-int8@litert", {"batch": 1, "seq": 16}, "inference",
     "mlp/batch:1_seq:16/tensorflow.to.tflite-int8.at.litert/cpu/latency_median_s"),
    ("keras[jax]", {}, "inference", "mlp/default/keras.jax/cpu/latency_median_s"),
    ("torch:eager", {"batch": 1}, "train", "mlp/batch:1/torch:eager/cpu/train/latency_median_s"),
    ("we/ird$id", {"x": "a b"}, "inference", "mlp/x:a_b/we_ird_id/cpu/latency_median_s"),
], ids=["native", "export", "two-params", "keras-no-sweep", "train", "other-chars"])
def test_metric_keys_are_stable_and_allowed_by_mlflow(target, params, mode, key):
    row = {"workload": "mlp", "params": json.dumps(params, sort_keys=True), "target": target, "profile": "cpu",
           "mode": mode}
    assert metric_key(row, "latency_median_s") == key
    assert re.fullmatch(r"[A-Za-z0-9_\-. :/]+", key)


def test_cells_sharing_a_key_after_sanitizing_are_an_error(tmp_path):
    write_records([_rec("r", "a>b"), _rec("r", "a.to.b")], tmp_path, "r", "p")
    with pytest.raises(PublishError, match="share the metric key"):
        run_rows(tmp_path, "r")


# --- MLflow ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One SQLite store for the module: creating its tables takes seconds, an experiment per test does not."""
    pytest.importorskip("mlflow", reason="pip install -e '.[mlflow]'")
    from suite.publish.mlflow import connect

    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"
    connect(uri, "warm-up")  # creates the tables here, not in the first test
    return uri


def _client(uri):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _runs(uri, experiment, run_id):
    exp = _client(uri).get_experiment_by_name(experiment)
    return _client(uri).search_runs([exp.experiment_id], f"tags.`bench.run_id` = '{run_id}'")


def test_mlflow_round_trip(tmp_path, store, capsys):
    results = tmp_path / "results"
    _run(results, "r1")
    rc = main(["publish", "mlflow", "--results", str(results), "--run-id", "r1", "--tracking-uri", store,
               "--experiment", "round-trip"])
    out = capsys.readouterr().out
    assert rc == 0 and "mlflow: run r1 -> MLflow run" in out, out
    (run,) = _runs(store, "round-trip", "r1")
    assert run.info.status == "FINISHED" and run.info.run_name == "r1"
    p, m, t = run.data.params, run.data.metrics, run.data.tags
    assert {k: p[k] for k in ("run_id", "suite_version", "git_commit", "host", "profiles", "modes")} == \
        {"run_id": "r1", "suite_version": "0.1.0", "git_commit": "abc123", "host": "vm", "profiles": "cpu",
         "modes": "inference,train"}
    assert p["targets"] == "jax:jit,keras[jax],torch:eager,torch>onnx@onnxruntime"
    assert {p["version.numpy"], p["version.torch"], p["version.onnxruntime"]} == {"2.4.6", "2.13.0", "1.23.0"}
    medians = _medians(results, "r1")
    assert len(medians) == 3
    assert {k: m[k] for k in medians} == medians  # exactly the Parquet medians
    assert m["mlp/batch:1/torch:eager/cpu/train/latency_median_s"] == 3e-3
    assert m["mlp/batch:1/torch.to.onnx.at.onnxruntime/cpu/pass"] == 1.0
    assert m["mlp/batch:32/keras.jax/cpu/pass"] == 0.0
    assert m["mlp/batch:32/keras.jax/cpu/max_abs_err"] == 3e-2 and m["mlp/batch:32/keras.jax/cpu/max_rel_err"] == 0.5
    assert "mlp/batch:1/jax:jit/cpu/pass" not in m  # skipped: did not run, did not fail
    assert (m["cells/total"], m["cells/pass"], m["cells/fail"], m["cells/skipped"]) == (5, 3, 1, 1)
    assert t["bench.run_id"] == "r1" and t["bench.status"] == "failed" and t["mlflow.source.git.commit"] == "abc123"
    assert t["bench.frameworks"] == "jax,keras,torch" and t["bench.workloads"] == "mlp"
    client = _client(store)
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"results", "cells.csv", "cells.json",
                                                                        "summary.md"}
    assert [a.path for a in client.list_artifacts(run.info.run_id, "results")] == ["results/r1__part-0.parquet"]
    local = client.download_artifacts(run.info.run_id, "cells.json", str(tmp_path))
    cells = {c["key"]: c for c in json.load(open(local))["cells"]}
    assert cells["mlp/batch:32/keras.jax/cpu"]["status"] == "fail"
    assert cells["mlp/batch:32/keras.jax/cpu"]["stage"] == "verify"
    assert cells["mlp/batch:1/jax:jit/cpu"]["status"] == "skipped"


def test_mlflow_publish_is_idempotent_and_force_replaces(tmp_path, store, capsys):
    _run(tmp_path, "r1")
    args = ["publish", "mlflow", "--results", str(tmp_path), "--tracking-uri", store, "--experiment", "idem"]
    assert main(args) == 0
    (first,) = _runs(store, "idem", "r1")
    capsys.readouterr()
    assert main(args) == 0
    assert f"already published as MLflow run {first.info.run_id}" in capsys.readouterr().out
    assert [r.info.run_id for r in _runs(store, "idem", "r1")] == [first.info.run_id]
    assert main(args + ["--force"]) == 0
    assert f"replaced {first.info.run_id}" in capsys.readouterr().out
    (second,) = _runs(store, "idem", "r1")  # active runs only: the first is deleted, never a duplicate
    assert second.info.run_id != first.info.run_id
    assert _client(store).get_run(first.info.run_id).info.lifecycle_stage == "deleted"


def test_mlflow_publishes_the_latest_run_by_default(tmp_path, store):
    _run(tmp_path, "old", minute=0)
    _run(tmp_path, "new", minute=5, scale=2.0)
    assert main(["publish", "mlflow", "--results", str(tmp_path), "--tracking-uri", store,
                 "--experiment", "latest"]) == 0
    (run,) = _runs(store, "latest", "new")
    assert run.data.metrics["mlp/batch:1/torch:eager/cpu/latency_median_s"] == 2e-3
    assert _runs(store, "latest", "old") == []


def test_mlflow_attaches_a_dashboard_folder(tmp_path, store):
    _run(tmp_path / "results", "r1")
    site = tmp_path / "site"
    (site / "assets").mkdir(parents=True)
    (site / "index.html").write_text("<html></html>")
    (site / "assets" / "style.css").write_text("body {}")
    assert main(["publish", "mlflow", "--results", str(tmp_path / "results"), "--tracking-uri", store,
                 "--experiment", "site", "--dashboard", str(site)]) == 0
    (run,) = _runs(store, "site", "r1")
    paths = {a.path for a in _client(store).list_artifacts(run.info.run_id, "dashboard")}
    assert paths == {"dashboard/index.html", "dashboard/assets"}


def test_bench_run_mlflow_end_to_end(tmp_path, store, capsys):
    """A real `bench run --mlflow URI` of the NumPy test target, then `bench publish mlflow` of the same run."""
    results = tmp_path / "results"
    rc = main(["run", "--quick", "--no-dashboard", "-w", "mlp_classifier", "-t", "test:numpy", "-p", "cpu-1t",
               "--sweep", "all", "--results", str(results), "--run-id", "e2e", "--mlflow", store,
               "--mlflow-experiment", "e2e"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "mlflow: run e2e -> MLflow run" in out
    (run,) = _runs(store, "e2e", "e2e")
    medians = _medians(results, "e2e")
    assert set(medians) == {"mlp_classifier/batch:1/test:numpy/cpu-1t/latency_median_s",
                            "mlp_classifier/batch:32/test:numpy/cpu-1t/latency_median_s"}
    assert {k: run.data.metrics[k] for k in medians} == medians
    assert run.data.metrics["mlp_classifier/batch:32/test:numpy/cpu-1t/pass"] == 1.0
    assert run.data.params["version.numpy"] and run.data.params["git_commit"]
    parquet = {a.path for a in _client(store).list_artifacts(run.info.run_id, "results")}
    assert parquet and all(p.startswith("results/e2e__") and p.endswith(".parquet") for p in parquet)
    assert main(["publish", "mlflow", "--results", str(results), "--tracking-uri", store, "--experiment", "e2e"]) == 0
    assert "already published" in capsys.readouterr().out


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("bench: error: ")
    return err[0]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("case", ["empty-folder", "unknown-run", "missing-folder-uri", "unknown-scheme-uri",
                                  "file-store-uri", "unreachable-server"])
def test_mlflow_errors_are_one_line_exit_2(tmp_path, store, capsys, monkeypatch, case):
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    results = tmp_path / "results"
    if case != "empty-folder":
        _run(results, "r1")
    uri = {"missing-folder-uri": f"sqlite:///{tmp_path}/no/such/folder/m.db",
           "unknown-scheme-uri": "nosuchscheme://x", "file-store-uri": (tmp_path / "mlruns").as_uri(),
           "unreachable-server": f"http://127.0.0.1:{_closed_port()}"}.get(case, store)
    run_id = ["--run-id", "nope"] if case == "unknown-run" else []
    rc = main(["publish", "mlflow", "--results", str(results), "--tracking-uri", uri, "--experiment", "err", *run_id])
    assert rc == 2
    line = _error_line(capsys)
    expected = {"empty-folder": "no results in", "unknown-run": "unknown run id 'nope'",
                "missing-folder-uri": "does not exist", "unknown-scheme-uri": "tracking URI 'nosuchscheme://x'",
                "file-store-uri": "use a database store such as sqlite:///",
                "unreachable-server": "the server does not answer"}
    assert expected[case] in line


def test_bench_run_with_a_bad_tracking_uri_stops_before_running(tmp_path, capsys):
    results = tmp_path / "results"
    rc = main(["run", "--quick", "--no-dashboard", "-w", "mlp_classifier", "-t", "test:numpy", "-p", "cpu-1t",
               "--results", str(results), "--mlflow", f"sqlite:///{tmp_path}/missing/m.db"])
    assert rc == 2 and "does not exist" in _error_line(capsys)
    assert not results.exists()  # nothing was run


def test_missing_mlflow_is_one_line_with_the_install_command(tmp_path, monkeypatch, capsys):
    _run(tmp_path, "r1")
    monkeypatch.setitem(sys.modules, "mlflow", None)  # what Python does for a package that is not installed
    monkeypatch.setitem(sys.modules, "mlflow.tracking", None)
    assert main(["publish", "mlflow", "--results", str(tmp_path)]) == 2
    assert "pip install -e '.[mlflow]'" in _error_line(capsys)


# --- TensorBoard ------------------------------------------------------------------------------------------

@pytest.fixture
def tb_reader(monkeypatch):
    """TensorBoard's event accumulator. Its readers use TensorFlow when it is installed (a 15 s import);
    this module's presence selects TensorBoard's own TF-free reader (its //tensorboard/compat:no_tensorflow)."""
    pytest.importorskip("tensorboard", reason="pip install -e '.[tensorboard]'")
    monkeypatch.setitem(sys.modules, "tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))
    from tensorboard.backend.event_processing import plugin_event_accumulator as pea

    def read(logdir):
        acc = pea.EventAccumulator(str(logdir), size_guidance={pea.TENSORS: 0})
        acc.Reload()
        return acc

    return read


def test_tensorboard_round_trip(tmp_path, tb_reader, capsys):
    results, logdir = tmp_path / "results", tmp_path / "tb"
    _run(results, "r1", minute=0)
    _run(results, "r2", minute=5, scale=2.0)
    write_records([_rec("r2", "jax:jit", 4, median=7e-4, minute=5)], results, "r2", "part-1")  # only in r2
    args = ["publish", "tensorboard", "--results", str(results), "--logdir", str(logdir)]
    assert main(args) == 0
    assert "tensorboard: 2 run(s) as steps 0-1" in capsys.readouterr().out
    # publishing imports no framework: checked in a fresh process (earlier tests may have imported them here)
    probe = ("import sys\nfrom suite.cli import main\n"
             f"assert main({args!r}) == 0\n"
             "print(sorted(m for m in ('torch', 'tensorflow', 'jax') if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert res.returncode == 0 and res.stdout.strip().splitlines()[-1] == "[]", res.stdout + res.stderr
    assert main(args) == 0  # publishing again replaces the history, never doubles it
    assert len(list(logdir.glob("events.out.tfevents.*"))) == 1
    acc = tb_reader(logdir)
    scalars = acc.PluginTagToContent("scalars")
    from tensorboard.util import tensor_util

    def series(tag):
        return [(e.step, float(tensor_util.make_ndarray(e.tensor_proto))) for e in acc.Tensors(tag)]

    m1, m2 = _medians(results, "r1"), _medians(results, "r2")
    assert set(scalars) == set(m2) and set(m1) < set(m2)
    for tag in m1:
        (s0, v0), (s1, v1) = series(tag)
        assert (s0, s1) == (0, 1)
        assert v0 == pytest.approx(m1[tag], rel=1e-6) and v1 == pytest.approx(m2[tag], rel=1e-6)  # float32
    assert series("mlp/batch:4/jax:jit/cpu/latency_median_s") == [(1, pytest.approx(7e-4, rel=1e-6))]
    assert set(acc.PluginTagToContent("text")) == {"run_summary"}
    texts = [(e.step, tensor_util.make_ndarray(e.tensor_proto).item().decode()) for e in acc.Tensors("run_summary")]
    assert [s for s, _ in texts] == [0, 1]
    assert "bench run `r1`" in texts[0][1] and "bench run `r2`" in texts[1][1]
    assert "| `mlp/batch:32/keras.jax/cpu` | fail (verify) |" in texts[1][1]


def test_tensorboard_with_no_results_is_one_line_exit_2(tmp_path, capsys):
    rc = main(["publish", "tensorboard", "--results", str(tmp_path / "none"), "--logdir", str(tmp_path / "tb")])
    assert rc == 2 and "no results in" in _error_line(capsys)
