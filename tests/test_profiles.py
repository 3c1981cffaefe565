"""Hardware profiles: shipped files, validation errors, detection, worker environment."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from suite import profiles
from suite.spec import SpecError

ROOT = Path(__file__).resolve().parent.parent
PROFILES_DIR = ROOT / "hardware_profiles"


@pytest.fixture(scope="module")
def shipped():
    return profiles.load_profiles(PROFILES_DIR)


def test_shipped_profiles_load(shipped):
    assert {"cpu", "cpu-1t", "cuda", "tpu", "mobile-runtime"} <= set(shipped)
    assert shipped["cpu"].threads == 0 and shipped["cpu"].affinity is None
    assert shipped["cpu-1t"].threads == 1 and shipped["cpu-1t"].affinity == (0,)
    assert shipped["cuda"].device == "cuda" and shipped["tpu"].device == "tpu"
    mobile = shipped["mobile-runtime"]
    assert mobile.threads == 2 and "host" in mobile.description.lower()
    for p in shipped.values():
        assert p.precision == "float32" and p.description


@pytest.mark.parametrize("text, field", [
    ("name: Bad Name\n", "name"),
    ("name: x\ndevice: gpu\n", "device"),
    ("name: x\nthreads: -1\n", "threads"),
    ("name: x\nthreads: two\n", "threads"),
    ("name: x\naffinity: [0, a]\n", "affinity"),
    ("name: x\nthreads: 3\naffinity: [0, 1]\n", "threads"),
    ("name: x\nprecision: float64\n", "precision"),
    ("name: x\ntargets: torch:eager\n", "targets"),
    ("name: x\ncolour: red\n", "colour"),
    ("description: no name\n", "name"),
], ids=["name", "device", "threads-negative", "threads-type", "affinity", "threads-vs-affinity",
        "precision", "targets", "unknown-field", "missing-name"])
def test_bad_profile_is_one_line_error(tmp_path, text, field):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as err:
        profiles.load_profile(path)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(f"{path}: {field}: ")
    assert "expected" in msg or "missing" in msg


def test_malformed_yaml_and_duplicate_names(tmp_path):
    (tmp_path / "a.yaml").write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match=r"a\.yaml: malformed YAML"):
        profiles.load_profiles(tmp_path)
    (tmp_path / "a.yaml").write_text("name: same\n")
    (tmp_path / "b.yaml").write_text("name: same\n")
    with pytest.raises(SpecError, match=r"b\.yaml: name: profile 'same' is also defined"):
        profiles.load_profiles(tmp_path)


def test_cpu_always_available(shipped):
    ok, reason = profiles.detect(shipped["cpu"])
    assert ok and reason


def test_missing_affinity_core_is_unavailable():
    p = profiles.parse_profile({"name": "far", "threads": 1, "affinity": [100000]})
    ok, reason = profiles.detect(p)
    assert not ok and "100000" in reason


@pytest.mark.parametrize("name", ["cuda", "tpu"])
def test_accelerator_detection_gives_a_reason(shipped, name):
    ok, reason = profiles.detect(shipped[name])
    assert isinstance(ok, bool) and reason
    if not ok:
        assert reason.startswith(f"no {name.upper()}")


def test_matches(shipped):
    mobile = shipped["mobile-runtime"]
    assert profiles.matches(mobile, "torch>onnx@onnxruntime")
    assert profiles.matches(mobile, "tensorflow>tflite-int8@litert")
    assert not profiles.matches(mobile, "torch:eager")
    assert profiles.matches(shipped["cpu"], "keras[jax]")  # '[' in the id, not in the pattern


@pytest.mark.parametrize("framework", ["torch", "tensorflow", "jax"])
def test_worker_env_cpu_1t(shipped, framework):
    env = profiles.worker_env(shipped["cpu-1t"], framework)
    for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        assert env[key] == "1"
    if framework == "tensorflow":  # the family's own variables come from its runtime hooks
        assert env["TF_NUM_INTRAOP_THREADS"] == "1" and env["TF_NUM_INTEROP_THREADS"] == "1"
    assert env["CUDA_VISIBLE_DEVICES"] == ""
    assert all(isinstance(v, str) for v in env.values())
    if framework == "jax":
        assert env["JAX_PLATFORMS"] == "cpu"
        assert "--xla_cpu_multi_thread_eigen=false" in env["XLA_FLAGS"]
    else:
        assert "JAX_PLATFORMS" not in env


def test_worker_env_cuda_keeps_gpus_visible(shipped):
    env = profiles.worker_env(shipped["cuda"], "jax")
    assert "CUDA_VISIBLE_DEVICES" not in env and env["JAX_PLATFORMS"] == "cuda"


def test_resolved_threads(shipped):
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert profiles.resolved_threads(shipped["cpu"]) == cores
    assert profiles.resolved_threads(shipped["cpu-1t"]) == 1
    assert profiles.resolved_threads(profiles.parse_profile({"name": "a", "affinity": [0]})) == 1


def test_threads_never_exceed_the_cores_the_profile_may_use():
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    many = profiles.parse_profile({"name": "many", "threads": cores + 6})
    assert profiles.resolved_threads(many) == cores
    far = profiles.parse_profile({"name": "far", "threads": 2, "affinity": [0, 100000]})  # core 100000: not here
    assert profiles.resolved_threads(far) == 1


def test_apply_in_process_for_a_runtime_pins_affinity():
    """Runs in a subprocess: affinity is process-wide and must not leak into the test session."""
    code = ("from suite import profiles; import sys;"
            "p = profiles.parse_profile({'name': 'x', 'threads': 1, 'affinity': [0]});"
            "r = profiles.apply_in_process(p, 'onnxruntime');"
            "assert r['affinity'] == [0], r;"
            "assert r['intra_op_spinning'] == 'default (on)', r;"  # the wait policy is recorded
            "assert not {'torch', 'tensorflow', 'jax'} & set(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_no_framework_imported():
    code = ("import sys, suite.profiles, suite.engine, suite.results, suite.envinfo;"
            "bad = {'torch', 'tensorflow', 'jax'} & set(sys.modules); assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
