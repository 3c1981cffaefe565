"""`bench run` end to end with the NumPy test targets: Parquet rows for every cell, exit codes,
interruption (SIGKILL mid-run) losing at most the cell in flight, and --resume finishing the rest."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from conftest import REPO

BENCH = [sys.executable, "-m", "suite.cli"]


def bench(*args, timeout=300):
    return subprocess.run(BENCH + list(args), capture_output=True, text=True, cwd=REPO, timeout=timeout)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("results")
    out = bench("run", "--no-dashboard", "-w", "mlp_classifier", "-t", "test:numpy", "-t", "test:nan", "-p", "cpu", "-p", "cuda",
                "--quick", "--sweep", "all", "--results", str(d), "--run-id", "r1")
    return d, out


def test_run_exit_code_reflects_failed_cells(run_dir):
    _, out = run_dir
    assert out.returncode == 1, out.stderr  # test:nan cells are failures
    assert "fastest target of the row" in out.stdout


def test_every_cell_is_a_row_with_its_status(run_dir):
    d, _ = run_dir
    df = pd.read_parquet(d)
    assert not [p for p in os.listdir(d) if p.endswith(".tmp")]
    got = sorted(zip(df["target"], df["profile"], df["batch_size"], df["status"]))
    assert got == sorted([(t, "cpu", b, s) for t, s in (("test:numpy", "pass"), ("test:nan", "nan")) for b in (1, 32)]
                         + [(t, "cuda", b, "skipped") for t in ("test:numpy", "test:nan") for b in (1, 32)])
    assert df.loc[df.profile == "cuda", "status_reason"].str.contains("profile cuda not available").all()


def test_stage_says_where_a_cell_stopped(run_dir):
    d, _ = run_dir
    df = pd.read_parquet(d)
    assert (df.loc[df.status == "nan", "stage"] == "verify").all()
    assert df.loc[df.status.isin(["pass", "skipped"]), "stage"].isna().all()  # passed, or never reached a stage


def test_timed_rows_carry_statistics(run_dir):
    d, _ = run_dir
    df = pd.read_parquet(d)
    ok = df[df.status == "pass"]
    assert len(ok) == 2
    for _, r in ok.iterrows():
        assert r.latency_ci_low_s <= r.latency_median_s <= r.latency_ci_high_s
        assert r.latency_median_s <= r.latency_p90_s <= r.latency_p99_s
        assert r.n_samples == len(r.samples_s) >= 3
        assert r.throughput == pytest.approx(r.batch_size / r.latency_median_s)
        assert r.peak_rss_bytes > 0 and r.flops > 0 and r.first_call_s > 0
        assert json.loads(r.params)["batch"] == r.batch_size
        assert r.schema_version >= 1 and r.run_id == "r1" and r.host
    nan = df[df.status == "nan"]
    assert nan.latency_median_s.isna().all(), "a numerics failure must never get a time"


def test_interrupted_run_keeps_finished_cells_and_resume_finishes(tmp_path):
    # Plan order within the worker: numpy@batch1, hang@batch1, numpy@batch32, hang@batch32.
    proc = subprocess.Popen(BENCH + ["run", "--no-dashboard", "-w", "mlp_classifier", "-t", "test:numpy", "-t", "test:hang", "-p", "cpu",
                                     "--quick", "--sweep", "all", "--results", str(tmp_path), "--run-id", "r2", "--timeout", "120"],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            files = list(tmp_path.glob("*.parquet"))
            if files and len(pd.read_parquet(tmp_path)) >= 1:
                break
            time.sleep(0.5)
        else:
            pytest.fail("no cell was stored within 120 s")
        time.sleep(1.0)  # the hang cell is now in flight
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    df = pd.read_parquet(tmp_path)
    assert list(zip(df.target, df.batch_size, df.status)) == [("test:numpy", 1, "pass")]

    out = bench("run", "--no-dashboard", "-w", "mlp_classifier", "-t", "test:numpy", "-p", "cpu", "--quick",
                "--sweep", "all", "--results", str(tmp_path), "--run-id", "r2", "--resume")
    assert out.returncode == 0, out.stderr
    assert "1 cells already stored, 1 to go" in out.stderr
    df = pd.read_parquet(tmp_path)
    assert sorted(zip(df.target, df.batch_size, df.status)) == [("test:numpy", 1, "pass"), ("test:numpy", 32, "pass")]


def test_results_readable_by_duckdb(run_dir):
    duckdb = pytest.importorskip("duckdb")
    d, _ = run_dir
    rows = duckdb.sql(f"SELECT target, count(*) FROM '{d}/*.parquet' GROUP BY target ORDER BY target").fetchall()
    assert rows == [("test:nan", 4), ("test:numpy", 4)]
