"""The asv benchmarks (suite/asv_bench): generated per workload from workloads/*.yaml, versioned by the
workload hash, framework-free at import, and fed by the suite's own plan/worker/engine. `.ci/run` runs
asv itself (`python -m suite.asv_ci`); these tests check the module without asv's subprocesses."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO

SUBSET = {"BENCH_ASV_WORKLOADS": "mlp_classifier", "BENCH_ASV_TARGETS": "test:numpy,test:nan,no:such",
          "BENCH_ASV_PROFILES": "cpu-1t,cuda", "BENCH_ASV_QUICK": "1"}


def test_asv_conf_points_at_the_benchmarks():
    import asv.util

    conf = asv.util.load_json(str(REPO / "asv.conf.json"), js_comments=True)
    assert (REPO / conf["benchmark_dir"] / "benchmarks.py").is_file()
    assert conf["repo"] == "." and conf["version"] == 1


def test_one_class_per_workload_versioned_by_hash_and_no_framework_imported():
    code = ("import json, sys; import suite.asv_bench.benchmarks as b; from suite.spec import load_workloads; "
            "wls = load_workloads('workloads'); "
            "print(json.dumps({'classes': {w.name: [getattr(b, w.name).version == w.hash, "
            "getattr(b, w.name).params, getattr(b, w.name).param_names] for w in wls}, "
            "'heavy': [m for m in ('torch', 'tensorflow', 'jax') if m in sys.modules]}))")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BENCH_ASV_")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env, check=True)
    doc = json.loads(out.stdout)
    assert doc["heavy"] == []
    assert len(doc["classes"]) == len(list((REPO / "workloads").glob("*.yaml")))
    for name, (same_version, params, names) in doc["classes"].items():
        assert same_version, name
        assert names == ["sweep", "target", "profile"]
        assert all(p.startswith("batch=") for p in params[0]) and "torch:eager" in params[1] and params[2] == ["cpu-1t"]


@pytest.fixture(scope="module")
def bench_class(monkeypatch_module):
    for k, v in SUBSET.items():
        monkeypatch_module.setenv(k, v)
    import importlib

    import suite.asv_bench.benchmarks as b

    b = importlib.reload(b)  # the selection is read at import
    cls = b.mlp_classifier
    return cls, cls().setup_cache()


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_passing_cell_tracks_engine_figures(bench_class):
    cls, cache = bench_class
    b = cls()
    b.setup(cache, "batch=1", "test:numpy", "cpu-1t")
    med = b.track_latency_median(cache, "batch=1", "test:numpy", "cpu-1t")
    assert 0 < med <= b.track_latency_p99(cache, "batch=1", "test:numpy", "cpu-1t")
    assert 0 <= b.track_max_abs_err(cache, "batch=1", "test:numpy", "cpu-1t") < 1e-4
    assert b.track_numerics_failed(cache, "batch=1", "test:numpy", "cpu-1t") == 0.0


def test_numerics_failure_has_no_latency_but_is_tracked(bench_class):
    cls, cache = bench_class
    b = cls()
    b.setup(cache, "batch=32", "test:nan", "cpu-1t")
    with pytest.raises(RuntimeError, match="not timed: nan"):
        b.track_latency_median(cache, "batch=32", "test:nan", "cpu-1t")
    assert b.track_numerics_failed(cache, "batch=32", "test:nan", "cpu-1t") == 1.0


@pytest.mark.parametrize("target,profile", [("test:numpy", "cuda"), ("no:such", "cpu-1t")],
                         ids=["profile-unavailable", "unknown-target"])
def test_cells_that_cannot_run_are_skipped_the_asv_way(bench_class, target, profile):
    cls, cache = bench_class
    with pytest.raises(NotImplementedError):
        cls().setup(cache, "batch=1", target, profile)
