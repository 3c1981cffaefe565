"""What the host was doing while a cell was timed, and whether its measurement can be trusted.

A timing is only as good as the machine was quiet. Around every timed cell the worker reads
(Linux ``/proc`` and ``/sys``; nothing elsewhere, every field then null):

``host_busy``
    the share of the cell's cores' time that **other** processes used while the cell was timed: the
    busy jiffies of those cores in ``/proc/stat`` (user, nice, system, irq, softirq) minus the CPU time
    of the suite itself (the worker's threads and its parent, the scheduler), over the wall time times
    the number of cores. 0.0 on a quiet host; ~0.5 when one other busy process shares a one-core
    profile's core.
``host_busy_all``
    the same share over **every** CPU of the host, for a cell whose profile has only some of them
    (``cpu-1t``): a neighbour on another core still shares the caches, the memory bandwidth and, on a VM,
    possibly a physical core (a one-thread cell timed on core 0 next to a busy loop on core 1 of this
    2-core VM ran up to 1.4x slower with its own core quiet).
``host_steal``
    the share of those cores' time the hypervisor gave to other guests (``steal`` in ``/proc/stat``).
``host_runqueue``
    runnable tasks on the whole host (``procs_running``), the most seen at the start and the end of
    timing; the cell's own running threads are included.
``cpu_mhz``
    the mean current frequency of the cell's cores at the end (``cpufreq/scaling_cur_freq``, else
    ``/proc/cpuinfo``), where the kernel reports it.

A cell is **noisy** (:func:`noisy_reason`) when

* other processes used more than ``NOISY_BUSY`` (10%) of its cores' time, or more than
  ``NOISY_BUSY_HOST`` (25%) of the whole host's (a profile on some cores only), or the steal was above
  ``NOISY_STEAL`` (5%): the host was not the cell's alone. The kernel counts both in ticks (10 ms at
  the usual 100 Hz), so a difference of two readings is uncertain by a tick per core and per counter;
  a cell is flagged only when its figure is above the threshold by more than that uncertainty (on a
  0.25 s cell of one core one tick is 4%: two ticks of steal in 25 are not evidence of a neighbour);
* its samples **drift**: the last third of the samples differs from the first third by more than
  ``DRIFT`` (10%, the engine's ``unstable_threshold``), each third summarised by the mean of its middle
  half: the machine changed speed during the measurement (another process started or stopped, a CPU
  changed speed state);
* its samples sit on **two levels**: two adjacent sorted samples in the middle 70% differ by more than
  ``LEVEL_GAP`` (25%): part of the samples ran at another speed than the rest.

``unstable`` (the engine's spread rule) says a median is imprecise; ``noisy`` says it was measured on a
machine that was not in one steady state, so it may be precise and still wrong. `bench run` measures a
noisy cell again later in the run (``--remeasure``), after waiting for the host to be quiet; `bench
compare` never calls a noisy cell a regression or an improvement.

This module imports nothing beyond the standard library (the worker imports it).
"""
from __future__ import annotations

import contextlib
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

NOISY_BUSY = 0.10
NOISY_BUSY_HOST = 0.25
NOISY_STEAL = 0.05
DRIFT = 0.10
LEVEL_GAP = 1.25
MIN_DRIFT_SAMPLES = 9  # three thirds of at least three samples
MIN_LEVEL_SAMPLES = 20

_BUSY_FIELDS = (0, 1, 2, 5, 6)  # user nice system irq softirq (guest time is inside user)
_STEAL = 7
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class Snapshot:
    """Counters at one instant (see :func:`snapshot`)."""

    t: float  # time.monotonic()
    busy: int  # busy jiffies of the cores
    total: int  # all jiffies of the cores (idle and iowait included)
    steal: int
    own_s: float  # CPU seconds of the suite's processes
    procs_running: int | None
    busy_all: int = 0  # busy jiffies of every CPU of the host
    n_all: int = 0  # how many CPUs that is


def cores_of_this_process() -> list[int]:
    """The cores this process may run on (its affinity), else all."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def _proc_stat() -> tuple[dict[int, list[int]], int | None] | None:
    try:
        text = Path("/proc/stat").read_text()
    except OSError:
        return None
    cpus, running = {}, None
    for line in text.splitlines():
        if line.startswith("cpu") and line[3:4].isdigit():
            name, *vals = line.split()
            cpus[int(name[3:])] = [int(v) for v in vals]
        elif line.startswith("procs_running"):
            running = int(line.split()[1])
    return cpus, running


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads) from /proc/PID/stat; 0.0 when unreadable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK
    except (OSError, IndexError, ValueError):
        return 0.0


def own_cpu_seconds(pids: Iterable[int] = ()) -> float:
    """CPU seconds of this process (every thread) and of ``pids`` (e.g. the scheduler that waits on us)."""
    return time.process_time() + sum(_cpu_seconds(p) for p in pids)


def snapshot(cores: Sequence[int], pids: Iterable[int] = ()) -> Snapshot | None:
    """The counters of ``cores`` now, and the CPU time of this process and ``pids``; None off Linux."""
    stat = _proc_stat()
    if stat is None:
        return None
    cpus, running = stat
    busy = total = steal = 0
    for c in cores:
        vals = cpus.get(c)
        if not vals:
            continue
        busy += sum(vals[i] for i in _BUSY_FIELDS if i < len(vals))
        total += sum(vals[:8])  # user .. steal (guest columns are already inside user / nice)
        steal += vals[_STEAL] if len(vals) > _STEAL else 0
    busy_all = sum(sum(v[i] for i in _BUSY_FIELDS if i < len(v)) for v in cpus.values())
    return Snapshot(time.monotonic(), busy, total, steal, own_cpu_seconds(pids), running, busy_all, len(cpus))


def cpu_mhz(cores: Sequence[int]) -> float | None:
    """Mean current frequency of ``cores`` in MHz (cpufreq, else /proc/cpuinfo); None when not reported."""
    got = []
    for c in cores:
        try:
            got.append(int(Path(f"/sys/devices/system/cpu/cpu{c}/cpufreq/scaling_cur_freq").read_text()) / 1000)
        except (OSError, ValueError):
            pass
    if got:
        return statistics.fmean(got)
    try:
        per, current = {}, None
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "processor":
                current = int(value)
            elif key == "cpu MHz" and current is not None:
                per[current] = float(value)
    except (OSError, ValueError):
        return None
    vals = [per[c] for c in cores if c in per]
    return statistics.fmean(vals) if vals else None


def interval(a: Snapshot | None, b: Snapshot | None, cores: Sequence[int]) -> dict:
    """The host-state columns for the time between two snapshots of the same cores (nulls left out)."""
    out: dict = {}
    if a is None or b is None:
        return out
    wall = b.t - a.t
    total = b.total - a.total
    if wall > 0 and cores:
        other = (b.busy - a.busy) / _TICK - (b.own_s - a.own_s)
        out["host_busy"] = min(max(other / (wall * len(cores)), 0.0), 1.0)
        if b.n_all > len(cores):  # the profile has only some of the CPUs: the rest of the host too
            other_all = (b.busy_all - a.busy_all) / _TICK - (b.own_s - a.own_s)
            out["host_busy_all"] = min(max(other_all / (wall * b.n_all), 0.0), 1.0)
    if total > 0:
        out["host_steal"] = (b.steal - a.steal) / total
    running = [r for r in (a.procs_running, b.procs_running) if r is not None]
    if running:
        out["host_runqueue"] = max(running)
    mhz = cpu_mhz(cores)
    if mhz is not None:
        out["cpu_mhz"] = mhz
    return out


def _us(seconds: float) -> str:
    return f"{seconds * 1e3:.3g} ms" if seconds >= 1e-3 else f"{seconds * 1e6:.3g} µs"


def _middle_mean(xs: Sequence[float]) -> float:
    """The mean of the middle half of ``xs`` (interquartile mean): robust to a few outliers like a median,
    but steady on samples that alternate between two levels, where a median jumps from one to the other."""
    s = sorted(xs)
    q = len(s) // 4
    mid = s[q:len(s) - q] or s
    return statistics.fmean(mid)


def sample_shape(samples: Sequence[float]) -> str | None:
    """``drift`` or ``two levels`` with the figures, from the samples in measurement order; else None."""
    n = len(samples)
    if n >= MIN_DRIFT_SAMPLES:
        k = n // 3
        first, last = _middle_mean(samples[:k]), _middle_mean(samples[-k:])
        if min(first, last) > 0 and max(first, last) / min(first, last) - 1 > DRIFT:
            return f"drift: {_us(first)} over the first third of the samples, {_us(last)} over the last"
    if n >= MIN_LEVEL_SAMPLES:
        xs = sorted(samples)
        for k in range(int(0.15 * n), int(0.85 * n) + 1):
            if xs[k - 1] > 0 and xs[k] / xs[k - 1] > LEVEL_GAP:
                return (f"two levels: {k} samples around {_us(statistics.median(xs[:k]))}, {n - k} around "
                        f"{_us(statistics.median(xs[k:]))}")
    return None


def tick_uncertainty(window_s: float | None, cores: Sequence[int], counters: int = 1) -> float:
    """How far a share of the cores' time computed from tick counters read at both ends of ``window_s``
    can be off by counting alone: one tick per core and per counter (``counters``: the cores' counter,
    plus the suite's own processes' user and system times for ``host_busy``), over the window's ticks."""
    if not window_s or window_s <= 0 or not cores:
        return 0.0
    return (len(cores) + counters - 1) / (window_s * _TICK * len(cores))


def noisy_reason(host: dict, samples: Sequence[float], cores: Sequence[int],
                 window_s: float | None = None) -> str | None:
    """Why a timed cell is noisy (see the module docstring), or None when it is clean. ``window_s``: the
    seconds between the two readings of the host state; the thresholds then allow for tick counting."""
    why = []
    busy = host.get("host_busy")
    if busy is not None and busy - tick_uncertainty(window_s, cores, counters=1 + 4) > NOISY_BUSY:
        why.append(f"host busy: other processes used {busy:.0%} of cores {_cores(cores)} while timing")
    busy_all = host.get("host_busy_all")
    every = range(max(os.cpu_count() or 0, len(cores)))
    if busy_all is not None and not why and busy_all - tick_uncertainty(window_s, every, 1 + 4) > NOISY_BUSY_HOST:
        why.append(f"host busy elsewhere: other processes used {busy_all:.0%} of the host's CPUs while timing "
                   f"(cores {_cores(cores)} were quiet, but a neighbour shares caches and memory bandwidth)")
    steal = host.get("host_steal")
    if steal is not None and steal - tick_uncertainty(window_s, cores) > NOISY_STEAL:
        why.append(f"steal {steal:.0%}: the hypervisor ran other guests on these cores")
    shape = sample_shape(samples)
    if shape:
        why.append(shape)
    return "; ".join(why) or None


NEIGHBOUR_REASONS = ("host busy", "steal", "timed with")  # noise from outside the cell's own samples


def from_a_neighbour(reason: str | None) -> bool:
    """Whether a noisy reason names something outside the cell (another process, the hypervisor, a busy
    host's wait policy), as opposed to the shape of its samples (drift, two levels)."""
    return any(part.startswith(NEIGHBOUR_REASONS) for part in (reason or "").split("; "))


def _cores(cores: Sequence[int]) -> str:
    cores = sorted(cores)
    if len(cores) > 2 and cores == list(range(cores[0], cores[-1] + 1)):
        return f"{cores[0]}-{cores[-1]}"
    return ",".join(map(str, cores))


LOCK_NAME = "bench-suite-timing.lock"


@contextlib.contextmanager
def timing_lock() -> Iterator[float]:
    """Holds the host-wide timing lock (an exclusive ``flock`` on ``$TMPDIR/bench-suite-timing.lock``)
    for a timed cell, and yields the seconds spent waiting for it.

    One cell at a time is timed per host, whichever `bench` process (or user) runs it: two runs started
    side by side take turns cell by cell instead of fighting for the cores: next to another spinning
    2-thread torch process, a 0.72 ms torch call on a 2-core host took 104 ms (README, "Threads";
    tests/benchmarks/thread_policy/). Without ``fcntl`` (not POSIX) nothing is locked and 0.0 is
    yielded."""
    try:
        import fcntl
    except ImportError:
        yield 0.0
        return
    path = Path(tempfile.gettempdir()) / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        t0 = time.monotonic()
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield time.monotonic() - t0
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def others_busy(cores: Sequence[int], seconds: float = 0.5) -> float | None:
    """Share of ``cores``' time that processes other than this one used over the next ``seconds``."""
    return _others_busy_host(cores, seconds)[0]


def _others_busy_host(cores: Sequence[int], seconds: float) -> tuple[float | None, float | None]:
    """(share of ``cores``, share of the whole host) other processes used over the next ``seconds``."""
    a = snapshot(cores)
    time.sleep(seconds)
    got = interval(a, snapshot(cores), cores)
    return got.get("host_busy"), got.get("host_busy_all")


def wait_for_quiet(cores: Sequence[int], timeout_s: float, window_s: float = 0.5) -> tuple[bool, float | None]:
    """Waits until other processes use at most ``NOISY_BUSY`` of ``cores`` (and at most ``NOISY_BUSY_HOST``
    of the whole host, for a profile on some cores only) over a ``window_s`` window, for at most
    ``timeout_s``. Returns (quiet, the last share of ``cores`` seen)."""
    end = time.monotonic() + timeout_s
    busy = None
    while True:
        busy, busy_all = _others_busy_host(cores, window_s)
        if (busy is None or busy <= NOISY_BUSY) and (busy_all is None or busy_all <= NOISY_BUSY_HOST):
            return True, busy
        if time.monotonic() >= end:
            return False, busy
