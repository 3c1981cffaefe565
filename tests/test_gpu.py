"""On a CUDA host: the cuda profile end to end, as a user runs it (`bench env`, `bench verify -p cuda`,
`bench run --quick -p cuda`). Marked ``gpu``; skipped, with the detector's reason, where no CUDA device is
visible (`pytest -m gpu` runs only these)."""
from __future__ import annotations

import re

import pandas as pd
import pytest

from conftest import REPO, bench

pytestmark = pytest.mark.gpu

MLP = str(REPO / "workloads" / "mlp_classifier.yaml")
CNN = str(REPO / "workloads" / "resnet_cnn.yaml")


@pytest.fixture(scope="module", autouse=True)
def cuda_host():
    from suite.profiles import detect, load_profiles

    ok, why = detect(load_profiles(REPO / "hardware_profiles")["cuda"])
    if not ok:
        pytest.skip(f"no CUDA device here: {why}")


def test_env_reports_the_cuda_profile_available():
    out = bench("env")
    assert out.returncode == 0, out.stderr
    assert re.search(r"^  cuda +device=cuda .* available$", out.stdout, re.M), out.stdout


def test_verify_on_cuda_passes_or_says_why_for_every_installed_target(tmp_path):
    out = bench("verify", "-w", MLP, "-p", "cuda", "--results", str(tmp_path), timeout=1800)
    df = pd.read_parquet(tmp_path)
    assert len(df) and (df.device == "cuda").all()
    bad = df[~df.status.isin(["pass", "unsupported", "skipped"])]
    assert bad.empty, bad[["target", "status", "status_reason"]].to_string() + out.stderr[-2000:]
    # every target that declares CUDA and is installed ran on it, not skipped
    for t in ("torch:eager", "jax:jit", "jax>stablehlo@iree"):
        row = df[df.target == t]
        assert len(row) and row.status.iloc[0] in ("pass", "skipped"), row.to_dict("records")


def test_quick_run_on_cuda_times_on_the_device(tmp_path):
    out = bench("run", "--quick", "--no-dashboard", "-w", MLP, "-w", CNN, "-p", "cuda", "-t", "torch:eager",
                "-t", "torch:compile", "-t", "jax:jit", "-t", "tensorflow:function", "-t", "jax>stablehlo@iree",
                "--results", str(tmp_path), timeout=1800)
    df = pd.read_parquet(tmp_path)
    ran = df[df.status == "pass"]
    assert len(ran) >= 2, df[["target", "status", "status_reason"]].to_string() + out.stderr[-2000:]
    assert (ran.device == "cuda").all() and (ran.latency_median_s > 0).all()
    assert ran.device_peak_bytes.notna().any()  # the device's memory is read where the framework reports it
