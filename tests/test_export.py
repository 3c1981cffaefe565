"""Export formats and runtimes: broken artifacts are caught, the cache is reused, runtime targets run an
existing artifact without torch / tensorflow / jax, and `bench export` + `bench run --artifacts` work.

Every test uses its own $BENCH_CACHE_DIR (a tmp folder) so what it checks about caching is not
disturbed by a developer's cache; the worker subprocesses inherit it.
"""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest

from conftest import REPO, run_cells, skip_if_missing
from suite.spec import load_workload

MLP = REPO / "workloads" / "mlp_classifier.yaml"


@pytest.mark.parametrize("target,status", [("torch>onnx-nan@onnxruntime", "nan"),
                                           ("torch>onnx-garbage@onnxruntime", "fail")])
def test_broken_artifact_is_caught_not_timed(target, status, cache, cpu_profile):
    skip_if_missing(target)
    recs = run_cells([load_workload(MLP)], [target], cpu_profile, timed=True)
    assert len(recs) == 2
    for rec in recs.values():
        assert rec["status"] == status, rec.get("status_reason")
        assert rec.get("latency_median_s") is None, "a broken artifact must never be timed"
        assert rec["export_s"] is not None and rec["artifact_bytes"] > 0
        if status == "fail":
            assert rec["max_abs_err"] > 1e-2 and rec["cosine"] is not None


def _manifests(cache, target_slug):
    return sorted((cache / "artifacts" / target_slug).glob("*/manifest.json"))


def test_second_run_reuses_cached_artifact(cache, cpu_profile):
    target = "tensorflow>tflite@litert"
    skip_if_missing(target)
    wl = load_workload(MLP)
    first = run_cells([wl], [target], cpu_profile)
    mans = _manifests(cache, "tensorflow_tflite_litert")
    assert len(mans) == 2, "one artifact per sweep point"
    stamps = [m.stat().st_mtime_ns for m in mans]
    second = run_cells([wl], [target], cpu_profile)
    assert [m.stat().st_mtime_ns for m in mans] == stamps, "the second run re-exported"
    for k, rec in second.items():
        assert rec["status"] == "pass"
        assert rec["export_s"] == first[k]["export_s"]  # the figure of the cached export
        assert rec["artifact_bytes"] == first[k]["artifact_bytes"] > 0


def test_litert_with_and_without_xnnpack_run_one_artifact(cache, cpu_profile):
    """XNNPACK is the interpreter's choice, not the converter's: the builtin-kernel route runs the float32
    route's .tflite, exported once (Export.same_artifact_as)."""
    targets = ["tensorflow>tflite@litert", "tensorflow>tflite@litert-noxnnpack"]
    skip_if_missing(targets[0])
    recs = run_cells([load_workload(MLP)], targets, cpu_profile)
    assert len(recs) == 4 and all(r["status"] == "pass" for r in recs.values())
    assert len(_manifests(cache, "tensorflow_tflite_litert")) == 2, "one artifact per sweep point"
    assert not _manifests(cache, "tensorflow_tflite_litert-noxnnpack")
    by_target = {}
    for rec in recs.values():
        by_target.setdefault(rec["target"], []).append((rec["artifact_bytes"], rec["export_s"]))
    assert sorted(by_target[targets[0]]) == sorted(by_target[targets[1]])
    assert all("; no XNNPACK" in r["layout"] for r in recs.values() if r["target"] == targets[1])


@pytest.mark.parametrize("target", ["torch>onnx@onnxruntime", "tensorflow>onnx@onnxruntime",
                                    "tensorflow>tflite@litert", "tensorflow>tflite-int8@litert",
                                    "torch>openvino@openvino", "tensorflow>openvino@openvino",
                                    "jax>stablehlo@iree", "torch>iree@iree", "torch>tflite@litert",
                                    "torch>tflite-int8@litert"])
def test_runtime_target_imports_no_framework(target, tmp_path):
    """`bench export` an artifact, then run it in a fresh process that cannot import torch, tensorflow,
    jax or keras (as on an edge box with only the runtime): it passes and is timed."""
    skip_if_missing(target)
    out = tmp_path / "artifacts"
    exp = subprocess.run([sys.executable, "-m", "suite.cli", "export", "-w", str(MLP), "-t", target,
                          "--out", str(out)], capture_output=True, text=True, timeout=600, cwd=REPO)
    assert exp.returncode == 0, exp.stdout + exp.stderr
    folder = sorted(out.glob("*/mlp_classifier-batch1-*"))[0]
    probe = f"""
import json, sys
FRAMEWORKS = ("torch", "tensorflow", "jax", "keras")
for m in FRAMEWORKS:
    sys.modules[m] = None  # `import m` now raises ImportError, as where it is not installed
from suite.profiles import load_profiles
from suite.worker import CellState, run_task
profile = load_profiles({str(REPO / 'hardware_profiles')!r})["mobile-runtime"]
task = {{"workload_path": {str(MLP)!r}, "params": {{"batch": 1}}, "target": {target!r}, "mode": "run",
        "timing": {{"warmup_s": 0.05, "min_warmup_calls": 1, "min_samples": 5, "min_time": 0.1, "max_time": 1.0}},
        "artifact": {str(folder)!r}}}
from suite.targets.registry import get_target
task["dtype"] = get_target({target!r}).dtype
rec = run_task(task, CellState(), profile)
bad = [m for m in sys.modules if m.split(".")[0] in FRAMEWORKS and sys.modules[m] is not None]
print("RESULT " + json.dumps({{"status": rec["status"], "reason": rec.get("status_reason"), "bad": bad,
                             "layout": rec.get("layout"), "median": rec.get("latency_median_s")}}))
"""
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert res.returncode == 0, res.stderr[-3000:]
    out_rec = json.loads([ln for ln in res.stdout.splitlines() if ln.startswith("RESULT ")][-1][7:])
    assert out_rec["bad"] == [], f"runtime target imported {out_rec['bad']}"
    assert out_rec["status"] == "pass", out_rec["reason"]
    assert out_rec["median"] is not None
    # threads follow the profile (mobile-runtime: 2)
    assert "threads=2" in out_rec["layout"]


def test_export_here_run_there(tmp_path):
    """`bench export --out DIR` then `bench verify --artifacts DIR` with an empty cache: nothing re-exported."""
    target = "torch>onnx@onnxruntime"
    skip_if_missing(target)
    out, empty = tmp_path / "artifacts", tmp_path / "cache"
    env = dict(__import__("os").environ, BENCH_CACHE_DIR=str(empty))
    exp = subprocess.run([sys.executable, "-m", "suite.cli", "export", "-w", str(MLP), "-t", target,
                          "--out", str(out)], capture_output=True, text=True, timeout=600, cwd=REPO, env=env)
    assert exp.returncode == 0, exp.stdout + exp.stderr
    assert exp.stdout.count("exported") >= 2 and "bench run --artifacts" in exp.stdout
    ver = subprocess.run([sys.executable, "-m", "suite.cli", "verify", "-w", str(MLP), "-t", target,
                          "--artifacts", str(out)], capture_output=True, text=True, timeout=600, cwd=REPO, env=env)
    assert ver.returncode == 0, ver.stdout + ver.stderr
    assert "pass" in ver.stdout
    assert not (empty / "artifacts").exists(), "with --artifacts nothing goes to the cache"


def test_missing_artifact_on_runtime_only_box_is_skipped(tmp_path, cpu_profile, monkeypatch):
    """No artifact in --artifacts and no exporter installed: `skipped` naming what to do, not a crash."""
    from suite.plan import make_plan
    from suite.scheduler import export_phase
    from suite.targets.registry import get_target

    info = get_target("torch>onnx@onnxruntime")
    info = dataclasses.replace(info, export=dataclasses.replace(info.export,
                                                                requires=(("surely_not_installed_mod", "torch"),)))
    cells = make_plan([load_workload(MLP)], [info], {"cpu": cpu_profile}, {"cpu": (True, "")})
    got = []
    ready = export_phase(cells, lambda c, r: got.append(r), artifacts_dir=str(tmp_path))
    assert ready == [] and len(got) == 2
    assert all(r["status"] == "skipped" and "cannot be exported here" in r["status_reason"] for r in got)


def test_failed_conversion_is_a_row_with_the_converters_message(cache, cpu_profile, opcase_dir):
    """OpenVINO's PyTorch frontend refuses avg_pool2d(divisor_override): `unsupported`, the export stage, the
    frontend's own words, and the runtime is never started."""
    target = "torch>openvino@openvino"
    skip_if_missing(target)
    from suite.plan import missing_module
    from suite.targets.registry import get_target

    if missing_module(get_target(target).export.requires):
        pytest.skip("exporter not installed")
    recs = run_cells([load_workload(opcase_dir / "avg_pool_same.yaml")], [target], cpu_profile)
    assert recs
    for rec in recs.values():
        assert (rec["status"], rec["stage"]) == ("unsupported", "export"), rec.get("status_reason")
        assert rec["status_reason"].startswith("export: openvino.convert_model: Conversion is failed for: aten::avg_pool2d")
        assert "do not support divisor_override" in rec["status_reason"]


def test_int8_verdict_uses_cosine_and_top1():
    import numpy as np

    from suite.verify import TOLERANCES, compare

    ref = np.random.default_rng(0).normal(size=(32, 10))
    noisy = ref + np.random.default_rng(1).normal(scale=0.05, size=ref.shape)
    tol = TOLERANCES["int8"]
    ok = compare([noisy], [ref], tol["rtol"], tol["atol"], classes_axis=-1,
                 min_cosine=tol["min_cosine"], min_top1=tol["min_top1"])
    assert ok.status == "pass" and ok.mismatch_fraction > 0  # element-wise figures still reported
    bad = compare([-ref], [ref], tol["rtol"], tol["atol"], classes_axis=-1,
                  min_cosine=tol["min_cosine"], min_top1=tol["min_top1"])
    assert bad.status == "fail" and "cosine" in bad.reason
