"""asv benchmarks generated from ``workloads/*.yaml``: one class per workload, same plan/build/measure
as ``bench run``.

Shape: class ``<workload>`` with ``params`` = sweep point × target × profile and ``track_*`` methods.
Every figure is the suite's own: a shared ``setup_cache`` runs the selected matrix once through
``suite.plan.make_plan`` + ``suite.runner.execute_plan`` (one worker subprocess per framework family,
so torch, TensorFlow and JAX never share a process, and the timing engine is ``suite.engine``);
the ``track_*`` methods read the cached records. asv's own timer (``time_*``) is not used: it would be
a second timing protocol around a model built in the asv process, with no isolation of frameworks.

- ``version`` of each class = the workload's hash: editing a workload resets its history, editing this
  file or the suite's code does not.
- A cell that cannot run here (framework not installed, profile unavailable, target cannot express the
  workload, profile does not apply) raises ``NotImplementedError`` in ``setup``: asv's "skipped".
- A cell whose numerics fail has no latency: its latency figures fail (asv "failed"), while
  ``track_max_abs_err`` and ``track_numerics_failed`` still record what went wrong.

Selection (environment variables, read at import; comma-separated):

    BENCH_ASV_WORKLOADS   workload names        (default: every workload)
    BENCH_ASV_TARGETS     target ids            (default: every target of the registry)
    BENCH_ASV_PROFILES    hardware profiles     (default: cpu-1t — one pinned thread, the steadiest
                                                 figures on a shared CI runner)
    BENCH_ASV_QUICK=1     smoke timing (TimingConfig.quick)
    BENCH_ASV_RESULTS=DIR also store the records as Parquet in DIR (e.g. results/)
    BENCH_ASV_TIMEOUT     seconds for the whole matrix (default 14400) — asv's setup_cache timeout

``asv run --bench REGEX`` filters what asv reports; the matrix measured is the selection above.
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]  # the checkout asv runs from (benchmark_dir lives in it)
WORKLOADS_DIR = Path(os.environ.get("BENCH_ASV_WORKLOADS_DIR") or _REPO / "workloads")
PROFILES_DIR = Path(os.environ.get("BENCH_ASV_PROFILES_DIR") or _REPO / "hardware_profiles")
_KEEP = ("status", "status_reason", "latency_median_s", "latency_p99_s", "max_abs_err", "max_rel_err")


def _env_list(name: str) -> list[str] | None:
    raw = os.environ.get(name, "").strip()
    return [s.strip() for s in raw.split(",") if s.strip()] or None


def _sweep_label(params: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in params.items())


def _load_workloads() -> list:
    """Workloads of the selection; one that this version of the suite cannot parse is left out."""
    from suite.spec import SpecError, load_workload

    wanted = _env_list("BENCH_ASV_WORKLOADS")
    out = []
    for path in sorted(WORKLOADS_DIR.glob("*.yaml")):
        try:
            wl = load_workload(path)
        except SpecError as e:  # e.g. an op newer than the commit being benchmarked
            print(f"asv_bench: {e}", file=sys.stderr)
            continue
        if wanted is None or wl.name in wanted:
            out.append(wl)
    return out


def _target_ids() -> list[str]:
    from suite.targets.registry import TARGETS

    return _env_list("BENCH_ASV_TARGETS") or list(TARGETS)


def _profile_names() -> list[str]:
    return _env_list("BENCH_ASV_PROFILES") or ["cpu-1t"]


def measure_selection() -> dict:
    """Runs the selected matrix once, exactly as `bench run` does; returns records by cell.

    Returns:
        {(workload, sweep label, target, profile): {status, reason, figures...}}.
    """
    import json

    from suite.plan import make_plan
    from suite.profiles import detect, load_profiles
    from suite.results import new_run_id
    from suite.runner import execute_plan
    from suite.targets.registry import all_targets

    # Ids or profiles this commit does not know (a newer benchmark file, an older suite) are skipped; the
    # test-only ids exist when $BENCH_TESTING_TARGETS=1 (the tests set it).
    known = all_targets()
    targets = [known[t] for t in _target_ids() if t in known]
    all_profiles = load_profiles(PROFILES_DIR)
    profiles = {n: all_profiles[n] for n in _profile_names() if n in all_profiles}
    cells = make_plan(_load_workloads(), targets, profiles, {n: detect(p) for n, p in profiles.items()},
                      timed=True)
    records = execute_plan(cells, "asv-" + new_run_id(), results_dir=os.environ.get("BENCH_ASV_RESULTS") or None,
                           quick=os.environ.get("BENCH_ASV_QUICK", "") not in ("", "0"),
                           timeout_s=float(os.environ.get("BENCH_ASV_CELL_TIMEOUT", 900)), progress_stream=sys.stderr)
    return {(r["workload"], _sweep_label(json.loads(r["params"])), r["target"], r["profile"]):
            {k: r.get(k) for k in _KEEP} for r in records}


class _CellBenchmarks:
    """Base of the generated classes (the leading underscore keeps asv from collecting it)."""

    workload = ""
    timeout = 120.0  # per track_* call: they only read the cache

    def setup_cache(self):
        # One function for every class, so asv keys one cache for all of them: the matrix is measured
        # once per asv run, grouped by framework family like `bench run`, not once per class.
        return measure_selection()

    setup_cache.timeout = float(os.environ.get("BENCH_ASV_TIMEOUT", 4 * 3600))

    def setup(self, cache, sweep, target, profile):
        rec = cache.get((self.workload, sweep, target, profile))
        if rec is None:
            raise NotImplementedError(f"{target} @{profile}: not in this commit's plan (unknown target or "
                                      "profile, or the profile does not apply to the target)")
        if rec["status"] in ("skipped", "unsupported"):
            raise NotImplementedError(f"{rec['status']}: {rec['status_reason']}")
        self.rec = rec

    def _timed(self, column: str) -> float:
        if self.rec["status"] != "pass" or self.rec.get(column) is None:
            raise RuntimeError(f"{self.workload}: not timed: {self.rec['status']}: {self.rec['status_reason']}")
        return float(self.rec[column])

    def track_latency_median(self, cache, sweep, target, profile):
        """Median seconds per call (suite.engine)."""
        return self._timed("latency_median_s")

    track_latency_median.unit = "seconds"

    def track_latency_p99(self, cache, sweep, target, profile):
        """99th percentile of seconds per call (suite.engine)."""
        return self._timed("latency_p99_s")

    track_latency_p99.unit = "seconds"

    def track_max_abs_err(self, cache, sweep, target, profile):
        """Largest absolute difference from the NumPy float64 reference (also when it fails)."""
        err = self.rec.get("max_abs_err")
        if err is None:
            raise RuntimeError(f"{self.workload}: not verified: {self.rec['status']}: {self.rec['status_reason']}")
        return float(err)

    track_max_abs_err.unit = "abs error"

    def track_numerics_failed(self, cache, sweep, target, profile):
        """0 when the cell matches the reference, 1 when it fails, errs or crashes (asv flags a rise)."""
        return 0.0 if self.rec["status"] == "pass" else 1.0

    track_numerics_failed.unit = "failed"


def _generate() -> dict[str, type]:
    targets, profiles = _target_ids(), _profile_names()
    classes = {}
    for wl in _load_workloads():
        name = re.sub(r"\W", "_", wl.name)
        classes[name] = type(name, (_CellBenchmarks,), {
            "__doc__": f"{wl.name}: {wl.description}",
            "workload": wl.name,
            "version": wl.hash,  # asv resets a benchmark's history when its version changes
            "params": [[_sweep_label(p) for p in wl.param_grid()], targets, profiles],
            "param_names": ["sweep", "target", "profile"],
            "__module__": __name__,
        })
    return classes


globals().update(_generate())
