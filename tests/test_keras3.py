"""Keras 3 specifics beyond the op cases of test_targets.py: the documented backend workarounds, the
per-worker backend choice, and import hygiene of the target module."""
from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from conftest import run_cells, skip_if_missing
from opcases import _one
from suite.spec import load_workload

# Cases the shared op cases do not reach: an asymmetric SAME average pool (Keras' torch backend pads it
# with replicated edges; suite/targets/keras/ops.py works around it) and strides > 1 with dilation > 1
# (Keras refuses the pair; ops.py pads, convolves at stride 1 and subsamples), plain and depthwise.
WORKAROUND_CASES = [
    _one("keras_avg_pool_same_even", "avg_pool2d", [3, 8, 8], pool_size=3, strides=2, padding="same"),
    _one("keras_conv_stride_dilation", "conv2d", [3, 11, 10], filters=4, kernel_size=3, strides=[2, 3],
         dilation=2, padding="same"),
    _one("keras_dw_stride_dilation", "conv2d", [4, 10, 10], filters=8, kernel_size=3, strides=2, dilation=2,
         groups=4, padding="same"),
]


@pytest.fixture(scope="module")
def workaround_records(tmp_path_factory, cpu_profile):
    skip_if_missing("keras[torch]")
    d = tmp_path_factory.mktemp("keras_cases")
    wls = []
    for case in WORKAROUND_CASES:
        (d / f"{case['name']}.yaml").write_text(yaml.safe_dump(case, sort_keys=False))
        wls.append(load_workload(d / f"{case['name']}.yaml"))
    return run_cells(wls, ["keras[torch]"], cpu_profile)  # torch: the backend with the deviation


@pytest.mark.parametrize("case", [c["name"] for c in WORKAROUND_CASES])
def test_workaround_matches_reference(case, workaround_records):
    (rec,) = [r for (w, _, _), r in workaround_records.items() if w == case]
    assert rec["status"] == "pass", f"{rec['status']}: {rec.get('status_reason')}"
    assert "eager, torch.inference_mode" in rec["layout"]
    assert '"keras"' in rec["versions"] and '"torch"' in rec["versions"]


@pytest.mark.parametrize("backend", ["jax", "tensorflow", "torch"])
def test_worker_env_picks_backend_before_import(backend, cpu_profile, tmp_path, monkeypatch):
    from suite.profiles import worker_env

    monkeypatch.delenv("KERAS_HOME", raising=False)
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path))
    env = worker_env(cpu_profile, f"keras-{backend}")
    assert env["KERAS_BACKEND"] == backend
    assert env["KERAS_HOME"] == str(tmp_path / "keras")  # not ~/.keras


def test_target_module_imports_no_framework():
    probe = ("import sys, suite.targets.keras, suite.targets.keras.export, suite.targets.testing.bugs_keras\n"
             "print([m for m in ('keras', 'torch', 'tensorflow', 'jax') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
