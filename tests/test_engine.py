"""The timing engine with fake workloads of known duration (busy-waits: exact on a loaded host,
unlike sleep, whose wake-up slack is tens of µs)."""
import itertools
import random
import subprocess
import sys
import time
import types

import pytest

from suite import engine
from suite.engine import Timing, TimingConfig

# timing-sensitive: run alone, after the parallel part of the test command (README)
pytestmark = pytest.mark.serial

FAST = TimingConfig(warmup_s=0.02, min_samples=10, min_time=0.05, max_time=1.0)


def busy(seconds):
    def run():
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pass
        return seconds
    return run


def nosync(_):
    return None


def measure_on_shared_host(run, cfg, expected, rel):
    """Real-time measurements can be spoiled by other processes on a small shared host: up to 3
    attempts, and the one closest to ``expected`` is returned (the engine is deterministic; the host
    is not)."""
    best = None
    for _ in range(3):
        t = engine.measure(run, nosync, cfg)
        if best is None or abs(t.median - expected) < abs(best.median - expected):
            best = t
        if abs(t.median - expected) <= rel * expected:
            break
    return best


@pytest.mark.parametrize("seconds", [50e-6, 2e-3], ids=["50us", "2ms"])
def test_median_matches_known_duration(seconds):
    t = measure_on_shared_host(busy(seconds), FAST, seconds, 0.05)
    assert isinstance(t, Timing)
    assert t.median == pytest.approx(seconds, rel=0.05)
    assert t.n_samples == len(t.samples_s) >= 10
    assert t.ci_low <= t.median <= t.ci_high
    assert t.throughput(32) == pytest.approx(32 / t.median)


def test_calibration_raises_loops_for_fast_function():
    t = measure_on_shared_host(busy(5e-6), FAST, 5e-6, 0.25)
    # one sample must last >= min_sample_s (100 µs): about 20 calls of 5 µs
    assert t.loops >= 10
    assert t.median * t.loops >= 0.9 * FAST.min_sample_s
    assert t.median == pytest.approx(5e-6, rel=0.25)


def test_slow_function_uses_single_call_samples():
    t = engine.measure(busy(3e-3), nosync, FAST)
    assert t.loops == 1


def test_warmup_values_are_not_samples():
    calls = itertools.count()
    fast = busy(20e-6)

    def run():
        if next(calls) < 3:  # three slow "compile" calls, then steady state
            time.sleep(0.03)
            return None
        return fast()

    t = engine.measure(run, nosync, TimingConfig(warmup_s=0.0, min_warmup_calls=3, min_samples=10,
                                                 min_time=0.05, max_time=1.0))
    assert t.warmup_calls >= 3
    assert max(t.samples_s) < 0.01
    assert t.loops >= 3  # calibration saw the warm 20 µs calls (5 per 100 µs sample), not the slow first ones


def test_synchronize_called_after_every_call():
    runs, syncs = [], []

    def run():
        runs.append(1)
        return len(runs)

    def sync(out):
        assert out == len(runs)  # the outputs of the call just made
        syncs.append(out)

    t = engine.measure(run, sync, TimingConfig.quick())
    assert len(syncs) == len(runs) == t.warmup_calls + t.loops * t.n_samples


class VirtualClock:
    """Stands in for time.perf_counter_ns so stop-rule tests do not depend on host load."""

    def __init__(self):
        self.now = 0

    def perf_counter_ns(self):
        return self.now

    def workload(self, durations_s):
        it = iter(durations_s)

        def run():
            self.now += int(next(it) * 1e9)
        return run


@pytest.fixture
def clock(monkeypatch):
    c = VirtualClock()
    monkeypatch.setattr(engine, "time", types.SimpleNamespace(perf_counter_ns=c.perf_counter_ns))
    return c


def test_stable_function_stops_early(clock):
    rng = random.Random(0)
    run = clock.workload(200e-6 * (1 + 0.002 * rng.random()) for _ in itertools.count())
    t = engine.measure(run, nosync, TimingConfig(min_time=0.5, max_time=10.0))
    assert t.stop_reason == "converged" and not t.unstable
    assert t.total_s < 1.0  # stopped right after min_time, far from max_time
    assert t.n_samples >= 10 and t.loops == 1
    assert t.median == pytest.approx(200e-6, rel=0.01)


def test_noisy_function_capped_at_max_time_virtual(clock):
    rng = random.Random(0)
    run = clock.workload(rng.choice([1e-3, 2e-3, 4e-3]) for _ in itertools.count())
    t = engine.measure(run, nosync, TimingConfig(max_time=3.0))
    assert t.stop_reason == "max_time" and t.unstable
    assert 3.0 <= t.total_s < 3.0 + 0.2 + 0.01  # cap + warmup (0.2 s) + one sample


def test_moderate_spread_at_cap_is_recorded_but_not_unstable(clock):
    # IQR/median ~ 4%: below the 10% threshold, but the 3% target was never reached. Calls of
    # ~2 ms keep loops at 1, so samples are not averaged below the target.
    rng = random.Random(1)
    run = clock.workload(2e-3 * rng.choice([0.98, 1.0, 1.02]) for _ in itertools.count())
    t = engine.measure(run, nosync, TimingConfig(max_time=2.0))
    assert t.stop_reason == "max_time" and not t.unstable
    assert 0.03 <= t.iqr / t.median <= 0.10


def test_noisy_function_capped_at_max_time_and_unstable():
    rng = random.Random(0)

    def run():
        return busy(rng.choice([1e-3, 2e-3, 4e-3]))()

    cfg = TimingConfig(warmup_s=0.01, min_samples=5, min_time=0.05, max_time=0.4)
    t = engine.measure(run, nosync, cfg)
    assert t.stop_reason == "max_time"
    assert t.unstable
    # The cap holds on any host: every sample but the last started before max_time had passed
    # since sampling began, so their sum (wall time they took, no more) is below the cap. The
    # exact overshoot of total_s is tested on the virtual clock above; on a real host preemption
    # between samples can add to it, so only a bound against a hang is asserted here.
    per_sample = [s * t.loops for s in t.samples_s]
    assert sum(per_sample[:-1]) < 0.4
    assert t.total_s < 0.4 + 2.0
    assert t.ci_low <= t.median <= t.ci_high


def test_max_samples_cap():
    t = engine.measure(lambda: None, nosync, TimingConfig(warmup_s=0.0, min_sample_s=1e-5, min_samples=3,
                                                          min_time=10.0, max_time=10.0, max_samples=20))
    assert t.n_samples == 20 and t.stop_reason == "max_samples"


def test_summarize_statistics():
    xs = [float(i) for i in range(1, 101)]
    t = engine.summarize(xs, loops=1)
    assert t.median == 50.5 and t.mean == 50.5
    assert t.iqr == pytest.approx(75.25 - 25.75)
    assert t.p90 == pytest.approx(90.1) and t.p99 == pytest.approx(99.01)
    # n = 100, 95%: the classic order-statistic interval is [x(40), x(61)]
    assert (t.ci_low, t.ci_high) == (40.0, 61.0)
    assert t.unstable  # IQR / median ~ 0.98


def test_median_ci_small_n_spans_min_max():
    assert engine.median_ci([1.0, 2.0, 3.0]) == (1.0, 3.0)
    assert engine.median_ci([float(i) for i in range(6)]) == (0.0, 5.0)


def test_first_call_and_peak_rss():
    seconds, out = engine.first_call(busy(1e-3), nosync)
    assert out == 1e-3 and seconds >= 1e-3
    assert engine.peak_rss_bytes() > 10 * 1024 * 1024  # a Python process with pyarrow/numpy loaded


def test_config_is_frozen_and_validated():
    cfg = TimingConfig()
    with pytest.raises(Exception):
        cfg.max_time = 1.0
    with pytest.raises(ValueError, match="min_warmup_calls"):
        TimingConfig(min_warmup_calls=0)
    assert TimingConfig.quick().max_time <= 1.0


def test_as_record_uses_result_columns():
    from suite import results

    rec = engine.summarize([1e-3, 1.1e-3, 0.9e-3], loops=4).as_record()
    assert set(rec) <= set(results.COLUMNS)


def test_a_worker_freezes_what_survives_a_task_but_later_cycles_are_still_collected():
    # In a fresh process: freezing must not keep a later cell's cyclic garbage (a model) alive.
    code = """
import gc, weakref
from suite.worker import _freeze_survivors

class Node: pass
_freeze_survivors()
assert gc.get_freeze_count() > 1000, gc.get_freeze_count()  # the interpreter's and the suite's objects
a, b = Node(), Node(); a.other, b.other = b, a  # a reference cycle, as in a torch.fx graph
probe = weakref.ref(a); del a, b
gc.collect()
assert probe() is None, "a cycle created after the freeze was not collected"
_freeze_survivors()
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
