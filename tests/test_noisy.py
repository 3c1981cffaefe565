"""A busy host must never produce a believable wrong number: the host's state is recorded per timed cell,
noisy cells are flagged and timed again, and `bench compare` never calls a noisy cell a regression.

Unit tests of suite.hoststate and the scheduler's re-measurement, then end-to-end runs of the NumPy test
target with a bounded CPU burner pinned to the `cpu-1t` profile's core."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import bench
from suite import hoststate
from suite.compare import compare_runs, host_state_note
from suite.hoststate import Snapshot, interval, noisy_reason, sample_shape
from suite.scheduler import _QuietWait, _Remeasure

# timing-sensitive: run alone, after the parallel part of the test command (README)
pytestmark = pytest.mark.serial

linux = pytest.mark.skipif(not os.path.exists("/proc/stat") or not hasattr(os, "sched_setaffinity"),
                           reason="host state is read from Linux /proc and affinity")


# --- suite.hoststate

def test_steady_samples_are_clean():
    rng = np.random.default_rng(0)
    assert sample_shape(list(1e-3 * (1 + 0.02 * rng.standard_normal(300)))) is None


def test_drifting_samples_are_named_with_their_figures():
    xs = [114e-6] * 100 + [160e-6] * 100 + [213e-6] * 100  # the level moved during the measurement
    why = sample_shape(xs)
    assert why.startswith("drift:") and "114 µs" in why and "213 µs" in why


def test_two_interleaved_levels_are_named():
    xs = [110e-6, 212e-6] * 50  # no drift: both halves hold both levels
    why = sample_shape(xs)
    assert why.startswith("two levels:") and "50 samples around 110 µs" in why


def test_too_few_samples_say_nothing():
    assert sample_shape([1e-3, 2e-3, 1e-3]) is None


def test_interval_subtracts_the_suites_own_cpu_time():
    tick = hoststate._TICK
    a = Snapshot(t=0.0, busy=0, total=0, steal=0, own_s=0.0, procs_running=2)
    # 2 s on one core: 1.6 s busy of which 0.6 s were ours -> others used 1.0 s = 50%; 0.1 s stolen
    b = Snapshot(t=2.0, busy=int(1.6 * tick), total=int(2.0 * tick), steal=int(0.1 * tick), own_s=0.6,
                 procs_running=3)
    got = interval(a, b, [0])
    assert got["host_busy"] == pytest.approx(0.5, abs=0.01)
    assert got["host_steal"] == pytest.approx(0.05, abs=0.01)
    assert got["host_runqueue"] == 3


def test_noisy_reason_thresholds():
    steady = [1e-3] * 50
    assert noisy_reason({"host_busy": 0.05, "host_steal": 0.0}, steady, [0]) is None
    assert noisy_reason({"host_busy": 0.35}, steady, [0, 1]).startswith("host busy: other processes used 35% of cores 0,1")
    assert "steal 8%" in noisy_reason({"host_busy": 0.0, "host_steal": 0.08}, steady, [0])
    assert noisy_reason({}, steady, [0]) is None  # nothing readable: only the samples can say


def test_a_neighbour_on_other_cores_makes_a_one_core_cell_noisy():
    """cpu-1t on core 0, a busy process on core 1 of a 2-core host: its own core is quiet, the host is not."""
    steady = [1e-3] * 50
    why = noisy_reason({"host_busy": 0.0, "host_busy_all": 0.5}, steady, [0], window_s=2.5)
    assert why.startswith("host busy elsewhere: other processes used 50% of the host's CPUs") and "cores 0" in why
    assert hoststate.from_a_neighbour(why)
    assert noisy_reason({"host_busy": 0.0, "host_busy_all": 0.2}, steady, [0], window_s=2.5) is None
    tick = hoststate._TICK  # the whole host's busy time, less the suite's own, over every CPU
    a = Snapshot(t=0.0, busy=0, total=0, steal=0, own_s=0.0, procs_running=2, busy_all=0, n_all=2)
    b = Snapshot(t=2.0, busy=int(0.5 * tick), total=int(2.0 * tick), steal=0, own_s=0.5, procs_running=3,
                 busy_all=int(2.5 * tick), n_all=2)
    got = interval(a, b, [0])
    assert got["host_busy"] == pytest.approx(0.0, abs=0.01) and got["host_busy_all"] == pytest.approx(0.5, abs=0.01)
    assert "host_busy_all" not in interval(a, b, [0, 1])  # a profile on every CPU: host_busy says it all


def test_a_few_ticks_on_a_short_cell_are_not_evidence_of_a_neighbour():
    """Counters move in ticks: 2 ticks of steal in a 0.25 s one-core window (8%) are within counting error,
    6 ticks (24%) are not; over 2.5 s the same 8% is flagged."""
    steady = [1e-3] * 50
    tick = hoststate._TICK
    assert noisy_reason({"host_steal": 2 / (0.25 * tick)}, steady, [0], window_s=0.25) is None
    assert "steal 24%" in noisy_reason({"host_steal": 6 / (0.25 * tick)}, steady, [0], window_s=0.25)
    assert "steal 8%" in noisy_reason({"host_steal": 0.08}, steady, [0], window_s=2.5)
    assert noisy_reason({"host_busy": 0.2}, steady, [0], window_s=0.25) is None
    assert noisy_reason({"host_busy": 0.5}, steady, [0], window_s=0.25).startswith("host busy: other processes used 50%")
    assert noisy_reason({"host_busy": 0.2}, steady, [0], window_s=5.0).startswith("host busy")


@linux
def test_snapshots_of_this_process_see_its_own_work_as_its_own():
    cores = [sorted(os.sched_getaffinity(0))[0]]
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, set(cores))
    try:
        a = hoststate.snapshot(cores)
        end = time.perf_counter() + 0.5
        while time.perf_counter() < end:  # our own busy loop is not "other processes"
            pass
        b = hoststate.snapshot(cores)
    finally:
        os.sched_setaffinity(0, before)
    got = interval(a, b, cores)
    assert 0.0 <= got["host_busy"] < 0.3  # a quiet test host; jiffies are 10 ms coarse
    assert got["host_runqueue"] >= 1


# --- re-measurement (suite.scheduler._Remeasure)

def _attempt(median, noisy=None, busy=0.0, status="pass"):
    rec = {"status": status, "latency_median_s": median, "host_busy": busy, "noisy": noisy is not None}
    if noisy:
        rec["noisy_reason"] = noisy
    return rec


def _drive(attempts, times, which="all"):
    """Feeds one cell's attempts through a _Remeasure queue; returns (records kept, attempts sent)."""
    kept, sent = [], []
    q = _Remeasure([("cell", {"task": 1})], lambda c, r: kept.append(r), times, lambda cores: None, [0], None, which)
    it = iter(q)
    for rec in attempts:
        job = next(it, None)
        if job is None:
            break
        sent.append(job)
        q.record("cell", rec)
    assert next(it, None) is None  # nothing left queued
    return kept, sent


def test_a_noisy_cell_is_timed_again_and_keeps_its_clean_attempt():
    kept, sent = _drive([_attempt(2e-3, "host busy: 50%", busy=0.5), _attempt(1e-3)], times=2)
    assert len(sent) == 2 and len(kept) == 1
    rec = kept[0]
    assert rec["latency_median_s"] == 1e-3 and not rec["noisy"] and rec["attempts"] == 2
    listed = json.loads(rec["attempts_json"])
    assert [a["median_s"] for a in listed] == [2e-3, 1e-3] and listed[0]["noisy_reason"] == "host busy: 50%"


def test_a_cell_noisy_every_time_keeps_its_fastest_attempt_still_noisy():
    kept, sent = _drive([_attempt(3e-3, "a", busy=0.6), _attempt(2e-3, "b", busy=0.4)], times=1)
    assert len(sent) == 2
    rec = kept[0]
    assert rec["latency_median_s"] == 2e-3 and rec["noisy"] and rec["noisy_reason"] == "b" and rec["attempts"] == 2


def test_with_no_clean_attempt_a_neighbours_figure_comes_last():
    """A passive worker next to a burner timed 1.0 ms, the default worker once quiet drifted around 1.2 ms:
    the cell keeps the default worker's figure (its own), not the faster figure the neighbour shaped."""
    drift = "drift: 1.1 ms over the first third of the samples, 1.3 ms over the last"
    kept, _ = _drive([_attempt(1.0e-3, "timed with OMP_WAIT_POLICY=PASSIVE (the host was busy ...)", busy=0.5),
                      _attempt(1.3e-3, drift), _attempt(1.2e-3, drift)], times=2)
    assert kept[0]["latency_median_s"] == 1.2e-3 and kept[0]["noisy"] and kept[0]["attempts"] == 3


def test_the_default_run_times_again_only_what_a_neighbour_spoiled():
    drift = "drift: 114 µs over the first third of the samples, 213 µs over the last"
    kept, sent = _drive([_attempt(2e-3, drift), _attempt(1e-3)], times=1, which="neighbour")
    assert len(sent) == 1 and kept[0]["noisy_reason"] == drift  # the samples' shape: kept as measured
    busy = "host busy: other processes used 50% of cores 0 while timing; " + drift
    kept, sent = _drive([_attempt(2e-3, busy, busy=0.5), _attempt(1e-3)], times=1, which="neighbour")
    assert len(sent) == 2 and not kept[0]["noisy"]
    assert hoststate.from_a_neighbour("timed with OMP_WAIT_POLICY=PASSIVE (the host was busy ...)")


def test_without_remeasure_a_noisy_cell_is_kept_as_measured():
    kept, sent = _drive([_attempt(3e-3, "a", busy=0.6)], times=0)
    assert len(sent) == 1 and kept[0]["noisy"] and "attempts_json" not in kept[0]


@linux
def test_waiting_for_quiet_spends_one_allowance_for_the_whole_run():
    wait = _QuietWait(1.0)
    burner = _burner(30.0)
    try:
        time.sleep(0.2)
        t0 = time.monotonic()
        quiet, busy = hoststate.wait_for_quiet([0], 0.5)
        assert not quiet and busy > 0.3  # the burner owns most of core 0
        wait([0])  # gives up after its second of allowance...
        assert 0.9 < time.monotonic() - t0 - 0.5 < 2.5 and wait.left <= 0
        t1 = time.monotonic()
        wait([0])  # ...and a busy host then costs the later re-measurements nothing
        assert time.monotonic() - t1 < 0.05
    finally:
        burner.kill()
        burner.wait()
    assert hoststate.wait_for_quiet([0], 5.0)[0]  # quiet again once it stopped


# --- bench compare

def _df(run_id, noisy_new=False, scale=1.0, busy_start=0.0):
    rng = np.random.default_rng(len(run_id))
    samples = list(1e-3 * scale * (1 + 0.01 * rng.standard_normal(200)))
    return pd.DataFrame([{"run_id": run_id, "timestamp": pd.Timestamp("2026-12-01", tz="UTC"), "workload": "w",
                          "params": '{"batch": 1}', "target": "t:a", "profile": "cpu", "mode": "inference",
                          "status": "pass", "samples_s": samples, "latency_median_s": float(np.median(samples)),
                          "noisy": noisy_new, "noisy_reason": "host busy: other processes used 50% of cores 0"
                          if noisy_new else None, "host": "h", "host_busy_start": busy_start,
                          "host_load_start": 2.0 * busy_start, "cpu_mhz": 2400.0}])


def test_a_noisy_cell_is_never_a_regression():
    rows = compare_runs(_df("a"), _df("b", noisy_new=True, scale=2.0))
    assert rows[0]["verdict"] == "not comparable" and rows[0]["ratio"] == pytest.approx(2.0, rel=0.05)
    assert rows[0]["note"].startswith("noisy in NEW: host busy")
    assert compare_runs(_df("a"), _df("b", scale=2.0))[0]["verdict"] == "regression"  # the same, clean


def test_runs_in_different_host_states_are_said_to_differ():
    assert host_state_note(_df("a"), _df("b")) == ""
    note = host_state_note(_df("a"), _df("b", noisy_new=True, busy_start=0.9))
    assert "differ in host state" in note and "0% vs 90%" in note and "noisy cells 0/1 vs 1/1" in note


# --- end to end, with a CPU burner on the cpu-1t profile's core

RUN = ["run", "--no-dashboard", "-w", "mlp_classifier", "-t", "test:numpy", "-p", "cpu-1t", "--sweep", "all"]


def _burner(seconds: float, core: int = 0) -> subprocess.Popen:
    """A busy loop pinned to ``core`` (0: the cpu-1t profile's core) that ends by itself after ``seconds``."""
    code = ("import os, time\nos.sched_setaffinity(0, {%d})\nend = time.time() + %r\n"
            "while time.time() < end:\n    pass\n" % (core, seconds))
    return subprocess.Popen([sys.executable, "-c", code])


def _run_beside_a_burner(tmp_path, core: int):
    """A quick cpu-1t run (re-timing noisy cells once) while a burner runs on ``core`` for its first 8 s;
    returns (the run's output, its records, the first timing attempt of every cell timed more than once)."""
    burner = _burner(8.0, core)
    try:  # the calls are a 10 ms busy-wait (steady whatever the VM's speed): only the burner makes noise
        out = bench(*RUN, "--quick", "--remeasure", "1", "--quiet-wait", "60", "--results", str(tmp_path),
                    "--run-id", "b", env={**os.environ, "BENCH_TEST_DELAY_MS": "10.0"})
    finally:
        burner.kill()
        burner.wait()
    assert out.returncode == 0, out.stderr
    df = pd.read_parquet(tmp_path)
    firsts = [json.loads(j)[0] for j in df.attempts_json.dropna()]
    assert firsts, "no cell was timed while the burner ran"
    return out, df, firsts


@linux
@pytest.mark.slow
def test_cells_timed_during_a_burner_are_flagged_and_timed_again_once_quiet(tmp_path):
    out, df, firsts = _run_beside_a_burner(tmp_path, 0)
    assert "noisy        mlp_classifier" in out.stderr and "timed again later (host busy" in out.stderr
    assert all(a["noisy_reason"].startswith("host busy") and a["host_busy"] > 0.3 for a in firsts)
    assert (df.attempts >= 1).all() and not df.noisy.any()  # timed again once the burner had stopped
    assert "timed again (--remeasure 1)" in out.stdout


@linux
@pytest.mark.slow
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2 if hasattr(os, "sched_getaffinity") else True,
                    reason="needs a second core for the neighbour")
def test_a_neighbour_on_the_other_core_flags_one_core_cells_until_it_stops(tmp_path):
    _, df, firsts = _run_beside_a_burner(tmp_path, max(os.sched_getaffinity(0)))  # cpu-1t times on core 0
    assert all(a["noisy_reason"].startswith("host busy elsewhere") for a in firsts), firsts
    assert not df.noisy.any()  # timed again once the whole host was quiet


@linux
@pytest.mark.slow
def test_a_a_with_a_burner_reports_no_regression_and_lists_the_noisy_cells(tmp_path):
    quiet = {**os.environ, "BENCH_TEST_DELAY_MS": "10.0"}  # steady calls, as in test_compare
    for run_id in ("a", "a2"):
        assert bench(*RUN, "--quick", "--results", str(tmp_path), "--run-id", run_id, env=quiet).returncode == 0
    burner = _burner(60.0)
    try:  # the whole NEW run shares its core with the burner, and is not timed again
        out = bench(*RUN, "--quick", "--remeasure", "0", "--results", str(tmp_path), "--run-id", "busy", env=quiet)
    finally:
        burner.kill()
        burner.wait()
    assert out.returncode == 0, out.stderr
    calm = bench("compare", "a", "a2", "--results", str(tmp_path))
    assert calm.returncode == 0 and "0 regression(s), 0 improvement(s), 2 unchanged" in calm.stdout, calm.stdout
    busy = bench("compare", "a", "busy", "--results", str(tmp_path), "--format", "json")
    assert busy.returncode == 0, busy.stdout
    doc = json.loads(busy.stdout)
    assert doc["counts"]["regression"] == 0 and doc["counts"]["improvement"] == 0
    assert [c["verdict"] for c in doc["cells"]] == ["not comparable"] * 2
    assert all(c["note"].startswith("noisy in NEW: host busy") for c in doc["cells"])
    assert "noisy cells 0/2 vs 2/2" in doc["host_state"]


@linux
def test_timed_cells_of_two_processes_take_turns_on_the_hosts_timing_lock(tmp_path):
    """While another bench process times a cell (here: this test holds the lock), a run's timed cell waits,
    and records how long."""
    import threading

    with hoststate.timing_lock() as waited:
        assert waited < 1.0
        proc = subprocess.Popen([sys.executable, "-m", "suite.cli", *RUN[:-2], "--sweep", "first", "--quick",
                                 "--results", str(tmp_path), "--run-id", "l"], cwd=str(Path(__file__).parents[1]),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        timer = threading.Timer(120, proc.kill)  # never hang the suite
        timer.start()
        time.sleep(12.0)  # the run starts its worker well within this, then waits
        assert proc.poll() is None  # still waiting for the lock
    out, err = proc.communicate()
    timer.cancel()
    assert proc.returncode == 0, err
    df = pd.read_parquet(tmp_path)
    assert len(df) == 1 and df.status.iloc[0] == "pass" and df.lock_wait_s.iloc[0] > 2.0


@linux
@pytest.mark.slow
def test_a_torch_worker_started_on_a_busy_host_waits_passively_and_its_cells_are_timed_again(tmp_path):
    """torch's default spin-waiting collapses next to a busy process (README, "Threads"): a timing worker
    started then uses OMP_WAIT_POLICY=PASSIVE, what it times is noisy (not torch's default), and the
    re-measurement runs in a fresh worker with the default once the host is quiet."""
    pytest.importorskip("torch")
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("the cpu profile needs 2 cores to be multi-threaded")
    burner = subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 20\n"
                               "while time.time() < end:\n    pass\n"])  # unpinned, bounded
    try:
        time.sleep(0.5)
        out = bench("run", "--no-dashboard", "-w", "mlp_classifier", "-t", "torch:eager", "-p", "cpu", "--quick",
                    "--remeasure", "2", "--quiet-wait", "90", "--results", str(tmp_path), "--run-id", "p",
                    timeout=600)
    finally:
        burner.kill()
        burner.wait()
    assert out.returncode == 0, out.stderr
    df = pd.read_parquet(tmp_path)
    assert len(df) == 1 and df.status.iloc[0] == "pass"
    first = json.loads(df.attempts_json.iloc[0])[0]
    assert "timed with OMP_WAIT_POLICY=PASSIVE (the host was busy" in first["noisy_reason"]
    # the kept figure is the default worker's: clean, or (this VM drifts often on a quick cell) noisy by
    # its samples' shape only, never the passive worker's figure
    kept_reason = df.noisy_reason.iloc[0] if df.noisy.iloc[0] else None
    assert not hoststate.from_a_neighbour(kept_reason) and df.attempts.iloc[0] >= 2
    assert json.loads(df.thread_settings.iloc[0])["omp_wait_policy"] == "default"  # the kept figure
