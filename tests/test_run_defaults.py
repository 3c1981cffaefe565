"""What `bench run` runs by default and how long it measures: default profiles, the first sweep point,
the timing presets, `--budget`, and the export phase's progress."""
from __future__ import annotations

import io
import re
import time

import pandas as pd
import pytest

from conftest import REPO, bench
from suite.budget import FIRST_GUESS_S, Budget, parse_duration
from suite.cli import _apply_full, _plan, _selection, build_parser
from suite.engine import TimingConfig
from suite.plan import make_plan
from suite.profiles import load_profiles
from suite.runner import Progress
from suite.spec import load_workload
from suite.targets.registry import get_target

# timing-sensitive: run alone, after the parallel part of the test command (README)
pytestmark = pytest.mark.serial


def _planned(*argv):
    args = build_parser().parse_args(["run", *argv])
    _apply_full(args)
    workloads, targets, profiles, avail = _selection(args, None)
    return profiles, _plan(args, workloads, targets, profiles, avail, timed=True)


def test_default_run_is_the_default_profiles_at_each_workloads_first_sweep_point():
    profiles, cells = _planned("-t", "test:numpy")
    marked = [n for n, p in load_profiles(REPO / "hardware_profiles").items() if p.default]
    assert list(profiles) == marked and "cpu" in marked and "cpu-1t" not in marked and "mobile-runtime" not in marked
    llama = {c.params for c in cells if c.workload.name == "llama_block"}
    assert llama == {(("batch", 1), ("seq", 16))}  # the first value of each sweep parameter
    names = {c.workload.name for c in cells}
    assert len(names) == len(list((REPO / "workloads").glob("*.yaml")))  # every shipped workload


def test_full_and_all_profiles_widen_the_matrix():
    _, default = _planned("-t", "test:numpy", "-w", "llama_block")
    chosen, every = _planned("-t", "test:numpy", "-w", "llama_block", "--sweep", "all", "--all-profiles")
    _, full = _planned("-t", "test:numpy", "-w", "llama_block", "--full")
    assert len(default) == 3  # cpu, cuda, tpu at one point
    assert list(chosen) == list(load_profiles(REPO / "hardware_profiles"))
    assert {c.profile.name for c in every} == set(chosen) - {"mobile-runtime"}  # runtime targets only there
    assert len({c.params for c in every}) == 4  # batch 1/16 x seq 16/64
    assert len(full) == len(every)


@pytest.mark.parametrize("args,expected", [
    (["--quick", "--precise"], "--quick and --precise both say how long to measure"),
    (["--budget", "10m", "--quick"], "--quick and --budget both say how long to measure"),
    (["--budget", "soon"], "--budget 'soon': expected a duration such as 90s, 30m, 1h or 1h30m"),
    (["--budget", "0s"], "expected a duration above zero"),
    (["-p", "cpu", "--all-profiles"], "give -p or --all-profiles, not both"),
    (["--export-workers", "0"], "--export-workers must be at least 1"),
], ids=["quick+precise", "budget+quick", "budget-garbage", "budget-zero", "p+all", "export-workers"])
def test_conflicting_or_bad_timing_flags_exit_2(args, expected):
    out = bench("run", "--no-dashboard", "-t", "test:numpy", "-w", "mlp_classifier", *args)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1 and expected in lines[0], out.stderr


@pytest.mark.parametrize("text,seconds", [("90s", 90), ("30m", 1800), ("1h", 3600), ("1h30m", 5400), ("1.5h", 5400),
                                          ("45", 45), (" 2M ", 120)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "m", "10x", "1h 30m", "-5s", "10m5"])
def test_parse_duration_refuses(text):
    with pytest.raises(ValueError, match="--budget"):
        parse_duration(text)


def test_presets_and_allowance_windows():
    assert TimingConfig.preset("precise") == TimingConfig()
    std = TimingConfig.preset("standard")
    assert (std.min_time, std.max_time, std.rel_spread_target) == (0.25, 1.5, TimingConfig().rel_spread_target)
    assert TimingConfig.preset("quick").max_time == 0.1  # a smoke test: 0.1 s of samples per cell at most
    with pytest.raises(ValueError, match="unknown timing preset"):
        TimingConfig.preset("fast")
    roomy = TimingConfig.for_allowance(30.0)
    assert (roomy.warmup_s, roomy.min_time, roomy.max_time) == (0.2, 0.5, 10.0)
    tight = TimingConfig.for_allowance(0.4)
    assert tight.warmup_s + tight.max_time == pytest.approx(0.4) and tight.min_time == tight.max_time / 2
    assert TimingConfig.for_allowance(0.0).max_time == 0.1  # never below the shortest window


def _cells(n_points=2):
    wl = load_workload(REPO / "workloads" / "mlp_classifier.yaml")
    prof = {"cpu": load_profiles(REPO / "hardware_profiles")["cpu"]}
    targets = [get_target("test:numpy"), get_target("test:crash")]
    cells = make_plan([wl], targets, prof, {"cpu": (True, "")}, timed=True)
    return [c for c in cells][: 2 * n_points]


def test_budget_shares_the_time_left_after_the_estimated_fixed_costs():
    cells = _cells()  # 4 timed cells: numpy and crash at two batch sizes
    b = Budget(100.0, cells, started=0.0)
    assert b.allowance(now=0.0) == pytest.approx((100.0 - 4 * FIRST_GUESS_S) / 4)
    # the first numpy cell took 12 s of which 2 s measuring: 10 s fixed, learnt for numpy and as the mean
    b._began[cells[0].key] = 0.0
    b.pending.pop(cells[0].key)
    b._fixed["test:numpy"] = [10.0]
    left_at_12 = 100.0 - 12.0
    assert b.allowance(now=12.0) == pytest.approx((left_at_12 - 3 * 10.0) / 3)
    b._fixed["test:crash"] = [1.0]  # a target's own mean wins over the overall one
    numpy_left = sum(1 for c in cells[1:] if c.target.id == "test:numpy")
    crash_left = 3 - numpy_left
    assert b.allowance(now=12.0) == pytest.approx((left_at_12 - numpy_left * 10.0 - crash_left * 1.0) / 3)
    assert b.allowance(now=200.0) == 0.0  # out of time: the shortest windows, and the summary says so
    assert "over budget by 100 s" in b.summary(now=200.0)


def test_a_target_not_seen_yet_is_estimated_by_the_median_not_the_compiling_outliers():
    b = Budget(100.0, _cells(), started=0.0)
    b._fixed = {"torch:compile": [10.0], "a": [0.5], "b": [0.6]}
    assert b._estimate("unseen") == pytest.approx(0.6)  # the mean (3.7) would make it look like a compile
    assert b._estimate("torch:compile") == pytest.approx(10.0)


def test_the_default_deadline_keeps_the_standard_window_until_the_run_falls_behind():
    from suite.budget import MIN_LEARNED

    import dataclasses

    std = TimingConfig.standard()
    base = _cells(1)[0]
    timed = [dataclasses.replace(base, params=(("batch", i),)) for i in range(1, 41)]  # 40 distinct cells
    b = Budget(1000.0, timed, started=0.0, ceiling=std)
    assert b.config_for(timed[0]) == std  # nothing learnt yet: never cut, whatever the first guess says
    for c in timed[:MIN_LEARNED]:  # cheap cells so far: on course, the preset exactly
        b.pending.pop(c.key)
        b._fixed.setdefault(c.target.id, []).append(0.1)
    b.started = time.monotonic()
    assert b.config_for(timed[MIN_LEARNED]) == std and not b.shortened
    b.started = time.monotonic() - 995.0  # 5 s left for the rest: shorter windows, never longer than the preset
    cut = b.config_for(timed[MIN_LEARNED + 1])
    assert cut.max_time < std.max_time and cut.warmup_s <= std.warmup_s and cut.min_time <= std.min_time
    assert len(b.shortened) == 1 and "1 timed cell(s) got a shorter window than the 1.5 s cap" in b.summary()


def test_the_default_run_says_it_kept_the_standard_window(tmp_path):
    out = bench("run", "--no-dashboard", "--no-peak", "-w", "mlp_classifier", "-t", "test:numpy", "-p", "cpu-1t",
                "--results", str(tmp_path), "--run-id", "d")
    assert out.returncode == 0, out.stderr
    assert "standard timing within 14 min" in out.stderr
    assert "every timed cell got the full window (1.5 s cap)" in out.stdout


def test_budget_run_ends_on_time_and_records_the_measuring_time(tmp_path):
    out = bench("run", "--no-dashboard", "-w", "mlp_classifier", "-t", "test:numpy", "-p", "cpu-1t", "--sweep", "all",
                "--budget", "20s", "--results", str(tmp_path), "--run-id", "b")
    assert out.returncode == 0, out.stderr
    m = re.search(r"budget 20 s: run took (\d+) s, within budget", out.stdout)
    assert m and int(m.group(1)) <= 20, out.stdout
    df = pd.read_parquet(tmp_path)
    assert len(df) == 2 and (df.status == "pass").all()
    assert (df.measure_s > 0).all() and df.measure_s.sum() <= 20
    # a roomy budget for two cheap cells: each gets more than the standard 1.5 s cap would give
    assert (df.n_samples >= 10).all()


def test_run_records_the_hosts_load_at_start(tmp_path):
    out = bench("run", "--no-dashboard", "-w", "mlp_classifier", "-t", "test:numpy", "-p", "cpu-1t", "--quick",
                "--results", str(tmp_path), "--run-id", "l")
    assert out.returncode == 0, out.stderr
    df = pd.read_parquet(tmp_path)
    assert df.host_busy_start.between(0, 1).all() and (df.host_load_start >= 0).all()
    assert df.host_busy_start.nunique() == 1  # measured once, before the run
    assert (df.host_busy_start > 0.2).all() == ("the host is busy" in out.stderr)


def test_progress_counts_exports_in_the_estimate():
    cells = _cells(1)
    out = io.StringIO()
    progress = Progress(cells, out)
    progress.started -= 30.0  # as if three exports took thirty seconds
    for done in (1, 2, 3):
        progress.exported(cells[0], {"status": "exported", "export_s": 9.5}, done, 3)
    line = out.getvalue().splitlines()[-1]
    # 3 units of work in 30 s, 2 cells left: about 20 s
    assert re.match(r"\[0:30, ~0:20 left\] export 3/3 exported +test:numpy mlp_classifier \[batch=1\] 9\.5 s$",
                    line), line
    progress.finish(cells[1], {"status": "unsupported", "stage": "export"})  # its export failed: no cost left
    assert progress.to_run == 1 and progress.ran == 0
