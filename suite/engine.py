"""The timing engine, written once for every target. No framework imports.

Protocol (after pyperf, asv, criterion and ``torch.utils.benchmark``):

1. **Warmup** — call ``run`` until ``warmup_s`` has passed and at least ``min_warmup_calls`` calls were
   made. Warmup calls are never measured values; they absorb lazy allocation, autotuning
   (cuDNN, oneDNN), guard specialisation (torch.compile) and cold caches.
2. **Calibration** (pyperf ``calibrate_loops``) — choose ``loops`` so that one sample (``loops`` calls)
   lasts at least ``min_sample_s``. The fastest warmup call seeds the guess; the guess is then checked
   on a timed batch and doubled until long enough. Calibration calls are counted as warmup calls.
   ``loops`` is then fixed for the whole measurement so every sample averages the same number of
   calls (pyperf keeps loops constant for the same reason: values stay comparable).
3. **Samples** — each sample is ``loops`` calls of ``run()`` each followed by ``synchronize(outputs)``,
   timed with ``time.perf_counter_ns`` around the whole batch; the stored value is batch / loops,
   i.e. seconds per call. Synchronising after *every* call (not once per batch) makes the value an
   honest per-call latency for asynchronous frameworks (CUDA streams, JAX async dispatch): without
   it, calls overlap and the sample reports dispatch throughput, not latency.
4. **Adaptive stop** — after ``min_samples`` samples and ``min_time`` seconds of measuring, stop as
   soon as IQR / median < ``rel_spread_target``; otherwise stop at ``max_time`` or ``max_samples``.
   At least ``MIN_SAMPLES_FLOOR`` samples are always taken so that a median and an IQR exist even
   for calls slower than ``max_time / 3``.

Defaults and why:

=====================  ========  ===============================================================
field                  default   why
=====================  ========  ===============================================================
warmup_s               0.2 s     enough for CPU frequency ramp-up and allocator warm-up
min_warmup_calls       2         the first calls after a build are often still special (lazy
                                 init, autotune, recompilation on the 2nd call's guards)
min_sample_s           100 µs    perf_counter_ns costs ~50-100 ns and has ns resolution: at 100 µs
                                 the timer adds < 1e-3 relative, so a 10 µs call (10 loops) is
                                 timed accurately, while every call >= 100 µs is its own sample
                                 (loops = 1): the median is then a median of single calls, as a
                                 bare timing loop's is. With 1 ms samples a 0.65 ms call was
                                 averaged over 2 calls and the median of those means read up to
                                 18% above the bare loop's on a noisy 2-core host, because means
                                 absorb the right tail that a median should ignore.
                                 pyperf's 100 ms suits micro-benchmarks of pure Python, not
                                 model calls that mostly last 10 µs .. 100 ms.
min_samples            10        fewest for a usable IQR and a 95% median CI (n >= 6 needed)
min_time               0.5 s     spans several scheduler quanta / GC cycles before judging spread
rel_spread_target      0.03      IQR within 3% of the median: the noise floor of a quiet host
max_time               10 s      bounds the cost of a noisy cell; the run is then flagged
max_samples            5000      bounds the stored ``samples_s`` list (40 KB per row)
unstable_threshold     0.10      IQR > 10% of median: comparisons below that size are not reliable
=====================  ========  ===============================================================

``unstable`` is set when IQR / median > ``unstable_threshold``. Whether the stop rule converged or hit
``max_time`` / ``max_samples`` is recorded separately in ``stop_reason``.

The garbage collector stays enabled (models run with it in real use) but ``gc.collect()`` runs once
before measuring so garbage from building is not charged to the samples. (A worker freezes what survives
each task, :func:`suite.worker._freeze_survivors`, so that collection scans only the cell's own objects.)

Note that for ``loops > 1`` p90 / p99 are quantiles of per-sample means over ``loops`` calls, not of
single calls; for calls >= ``min_sample_s`` they are single-call quantiles.
"""
from __future__ import annotations

import gc
import math
import resource
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

MIN_SAMPLES_FLOOR = 3  # always take this many samples, whatever max_time says
MAX_LOOPS = 1 << 24  # guards calibration against a run() that returns instantly (e.g. a cache)


@dataclass(frozen=True)
class TimingConfig:
    """How long and how carefully to measure. See the module docstring for why these defaults."""

    warmup_s: float = 0.2
    min_warmup_calls: int = 2
    min_sample_s: float = 1e-4
    min_samples: int = 10
    min_time: float = 0.5
    rel_spread_target: float = 0.03
    max_time: float = 10.0
    max_samples: int = 5000
    unstable_threshold: float = 0.10
    confidence: float = 0.95

    def __post_init__(self):
        if self.min_warmup_calls < 1:
            raise ValueError("TimingConfig.min_warmup_calls: expected >= 1 (calibration needs a warm call)")
        if self.min_sample_s <= 0 or self.max_time <= 0 or self.max_samples < MIN_SAMPLES_FLOOR:
            raise ValueError(f"TimingConfig: expected min_sample_s > 0, max_time > 0 and "
                             f"max_samples >= {MIN_SAMPLES_FLOOR}")
        if not 0 < self.confidence < 1:
            raise ValueError("TimingConfig.confidence: expected a level in (0, 1)")

    @classmethod
    def quick(cls) -> "TimingConfig":
        """A smoke-test config: a few samples, 0.1 s at most per cell, settled at 5% spread (the cap was
        0.25 s; cut so that a cold `bench run --quick` of the shipped matrix fits 5 minutes on 2 cores: its
        medians agreed with the default run's no worse at 0.15 s than at 0.25 s, both limited by the host)."""
        return cls(warmup_s=0.05, min_warmup_calls=1, min_samples=5, min_time=0.05, max_time=0.1,
                   rel_spread_target=0.05, max_samples=1000)

    @classmethod
    def standard(cls) -> "TimingConfig":
        """`bench run`'s default: the same stop rule (IQR/median < 3%, at least 10 samples) over shorter
        windows — 0.1 s warmup, judged after 0.25 s, capped at 1.5 s — so that a whole matrix fits a
        coffee break. A call that does not settle within 1.5 s keeps its spread in ``unstable`` /
        ``stop_reason``; ``precise`` (the class defaults) gives it 10 s."""
        return cls(warmup_s=0.1, min_time=0.25, max_time=1.5)

    @classmethod
    def for_allowance(cls, seconds: float) -> "TimingConfig":
        """The config whose warmup and sampling fit ``seconds`` (a time budget's share of one cell).

        Up to the default windows (0.2 s warmup, judged after 0.5 s); the cap is the rest of the
        allowance, never under 0.1 s nor above 10 s. The stop rule is unchanged: a call that settles
        early stops early and leaves its time to the cells after it.
        """
        a = max(float(seconds), 0.0)
        warmup = min(0.2, max(0.02, a * 0.1))
        max_time = min(10.0, max(0.1, a - warmup))
        return cls(warmup_s=warmup, min_warmup_calls=1 if a < 0.5 else 2, min_samples=10 if a >= 0.5 else 5,
                   min_time=min(0.5, max_time / 2), max_time=max_time)

    @classmethod
    def preset(cls, name: str) -> "TimingConfig":
        """``quick``, ``standard`` or ``precise`` (the class defaults)."""
        presets = {"quick": cls.quick, "standard": cls.standard, "precise": cls}
        if name not in presets:
            raise ValueError(f"unknown timing preset {name!r}; known: {', '.join(presets)}")
        return presets[name]()


@dataclass(frozen=True)
class Timing:
    """Immutable result of :func:`measure`. All times are seconds per call.

    Attributes:
        samples_s: raw values, one per sample (sample time / loops), in measurement order.
        loops: calls per sample.
        n_samples: len(samples_s).
        median, mean, p90, p99, iqr: statistics of samples_s (linear-interpolated quantiles).
        ci_low, ci_high: distribution-free confidence interval of the median (order statistics,
            binomial; ``confidence`` level, 95% by default). [min, max] when n < 6.
        unstable: IQR / median above unstable_threshold (see stop_reason for how the run ended).
        total_s: wall time of the whole measure() call, warmup included.
        warmup_calls: unmeasured calls (warmup and calibration).
        stop_reason: ``converged``, ``max_time`` or ``max_samples``.
    """

    samples_s: tuple[float, ...]
    loops: int
    n_samples: int
    median: float
    mean: float
    p90: float
    p99: float
    iqr: float
    ci_low: float
    ci_high: float
    unstable: bool
    total_s: float = 0.0
    warmup_calls: int = 0
    stop_reason: str = "converged"

    @property
    def rel_spread(self) -> float:
        """IQR / median (0 when the median is 0)."""
        return self.iqr / self.median if self.median > 0 else 0.0

    def throughput(self, items: float) -> float:
        """Items per second at the median latency, e.g. ``timing.throughput(batch_size)``.

        Args:
            items: items processed by one call (typically the batch size).
        Returns:
            items / median, or ``math.inf`` when the median is 0.
        """
        return items / self.median if self.median > 0 else math.inf

    def as_record(self) -> dict:
        """The results-store columns this timing fills (see :mod:`suite.results`)."""
        return {
            "latency_median_s": self.median, "latency_mean_s": self.mean, "latency_p90_s": self.p90,
            "latency_p99_s": self.p99, "latency_iqr_s": self.iqr, "latency_ci_low_s": self.ci_low,
            "latency_ci_high_s": self.ci_high, "n_samples": self.n_samples, "loops": self.loops,
            "unstable": self.unstable, "samples_s": list(self.samples_s), "stop_reason": self.stop_reason,
            "measure_s": self.total_s,
        }


# ---------------------------------------------------------------------------------------------------
# statistics (pure Python: no numpy needed on an edge box, and n is at most a few thousand)

def quantile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile of already sorted values (NumPy's default method).

    Args:
        sorted_values: non-empty, ascending.
        q: in [0, 1].
    Returns:
        the q-quantile.
    """
    n = len(sorted_values)
    if n == 0:
        raise ValueError("quantile of no values")
    pos = q * (n - 1)
    lo = int(math.floor(pos))
    hi = min(lo + 1, n - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def median_ci(sorted_values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Distribution-free confidence interval of the median from order statistics.

    The interval [x(j), x(n-j+1)] (1-based) covers the true median with probability
    1 - 2 * P(B <= j-1), B ~ Binomial(n, 1/2); j is the largest index keeping that >= confidence.
    Needs n >= 6 for 95%; below that, [min, max] is returned (coverage 1 - 2^(1-n)).

    Args:
        sorted_values: non-empty, ascending.
        confidence: two-sided level, e.g. 0.95.
    Returns:
        (low, high).
    """
    n = len(sorted_values)
    alpha_half = (1.0 - confidence) / 2.0
    log_half_n = n * math.log(0.5)
    cdf, j = 0.0, 0  # cdf = P(B <= j - 1) while scanning
    for k in range(n // 2 + 1):
        pk = math.exp(math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) + log_half_n)
        if cdf + pk > alpha_half:
            break
        cdf += pk
        j = k + 1  # x(j) with P(B <= j-1) = cdf <= alpha/2
    j = max(j, 1)
    return sorted_values[j - 1], sorted_values[n - j]


def summarize(samples_s: Sequence[float], loops: int = 1, config: TimingConfig | None = None, *,
              total_s: float = 0.0, warmup_calls: int = 0, stop_reason: str = "converged") -> Timing:
    """Builds a :class:`Timing` from raw per-call values.

    Args:
        samples_s: per-call seconds, one per sample.
        loops: calls per sample.
        config: supplies ``unstable_threshold``, ``rel_spread_target`` and ``confidence``.
        total_s, warmup_calls, stop_reason: copied into the Timing.
    Returns:
        the Timing.
    """
    config = config or TimingConfig()
    xs = sorted(samples_s)
    med = quantile(xs, 0.5)
    iqr = quantile(xs, 0.75) - quantile(xs, 0.25)
    lo, hi = median_ci(xs, config.confidence)
    spread = iqr / med if med > 0 else 0.0
    # A cap reached before the 3% target is recorded in stop_reason, not flagged: a 5% spread still
    # supports comparisons at the 10% level; only a spread above the threshold does not.
    unstable = spread > config.unstable_threshold
    return Timing(tuple(float(s) for s in samples_s), int(loops), len(xs), med, math.fsum(xs) / len(xs),
                  quantile(xs, 0.90), quantile(xs, 0.99), iqr, lo, hi, bool(unstable), float(total_s),
                  int(warmup_calls), stop_reason)


def _spread(samples: list[float]) -> float:
    xs = sorted(samples)
    med = quantile(xs, 0.5)
    return (quantile(xs, 0.75) - quantile(xs, 0.25)) / med if med > 0 else 0.0


# ---------------------------------------------------------------------------------------------------
# measurement

def _time_loops(run: Callable[[], Any], synchronize: Callable[[Any], None], loops: int) -> tuple[int, Any]:
    """Times ``loops`` synchronised calls; returns (nanoseconds, last outputs).

    Kept minimal on purpose: locals only, one ``range`` loop, two calls per iteration — this is the
    whole per-call overhead of the engine over a bare timed loop.
    """
    timer = time.perf_counter_ns
    out = None
    t0 = timer()
    for _ in range(loops):
        out = run()
        synchronize(out)
    t1 = timer()
    return t1 - t0, out


def first_call(run: Callable[[], Any], synchronize: Callable[[Any], None]) -> tuple[float, Any]:
    """Times the very first call (compilation, lazy init and all), synchronised.

    Args:
        run: one call of the model on prepared inputs, returning outputs.
        synchronize: blocks until those outputs are computed.
    Returns:
        (seconds, outputs).
    """
    t0 = time.perf_counter_ns()
    out = run()
    synchronize(out)
    return (time.perf_counter_ns() - t0) * 1e-9, out


def measure(run: Callable[[], Any], synchronize: Callable[[Any], None],
            config: TimingConfig | None = None) -> Timing:
    """Warms up, calibrates ``loops``, and samples until the stop rule fires.

    Args:
        run: one call of the model on already-prepared inputs, returning its outputs.
        synchronize: blocks until the outputs of ``run`` are computed (called after every call).
        config: a :class:`TimingConfig`; the defaults when None.
    Returns:
        a :class:`Timing` of per-call seconds.
    """
    config = config or TimingConfig()
    timer = time.perf_counter_ns
    start = timer()

    # 1. warmup: single synchronised calls, timed only to seed calibration. The fastest warm call
    #    seeds it: preemption can only make a call slower, so the minimum is the robust estimate.
    warmup_calls, best_ns = 0, None
    warmup_end = start + int(config.warmup_s * 1e9)
    keep = None  # the engine holds the latest outputs so nothing is freed or elided early
    while warmup_calls < config.min_warmup_calls or timer() < warmup_end:
        ns, keep = _time_loops(run, synchronize, 1)
        best_ns = ns if best_ns is None else min(best_ns, ns)
        warmup_calls += 1

    # 2. calibration: seed loops from the warm per-call time, then verify on a timed batch and
    #    grow. The batch always runs, even when the seed says loops = 1: if every warmup call was
    #    still slow (e.g. only min_warmup_calls compile-like calls), the seed is wrong.
    target_ns = config.min_sample_s * 1e9
    loops = min(MAX_LOOPS, max(1, math.ceil(target_ns / max(best_ns, 1))))
    while True:
        ns, keep = _time_loops(run, synchronize, loops)
        warmup_calls += loops
        if ns >= target_ns or loops >= MAX_LOOPS:
            break
        # Grow towards the target with 20% headroom, at least doubling, as pyperf does.
        loops = min(MAX_LOOPS, max(loops * 2, math.ceil(loops * target_ns * 1.2 / max(ns, 1))))

    # 3. samples with the adaptive stop rule. The spread is re-checked after ~10% more samples,
    #    not after every sample, so the rule costs O(n log n) overall rather than O(n^2 log n).
    gc.collect()
    samples: list[float] = []
    inv = 1e-9 / loops
    m0 = timer()
    min_end = m0 + int(config.min_time * 1e9)
    max_end = m0 + int(config.max_time * 1e9)
    next_check = config.min_samples
    stop_reason = "converged"
    while True:
        ns, keep = _time_loops(run, synchronize, loops)
        samples.append(ns * inv)
        n = len(samples)
        now = timer()
        if n < MIN_SAMPLES_FLOOR:
            continue
        if n >= config.max_samples:
            stop_reason = "max_samples"
            break
        if now >= max_end:
            stop_reason = "max_time"
            break
        if n >= next_check and now >= min_end:
            if _spread(samples) < config.rel_spread_target:
                break
            next_check = max(n + 1, int(n * 1.1))
    del keep
    total_s = (timer() - start) * 1e-9
    return summarize(samples, loops, config, total_s=total_s, warmup_calls=warmup_calls,
                     stop_reason=stop_reason)


def peak_rss_bytes() -> int:
    """Peak resident set size of the current process, in bytes.

    This is the process high-water mark (``getrusage(RUSAGE_SELF).ru_maxrss``) since the process
    started: it never goes down, so a worker running several cells reports the maximum so far,
    including importing the framework and building earlier cells.

    Returns:
        bytes (Linux reports KiB, macOS bytes; both are converted).
    """
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)
