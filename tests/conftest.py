"""Shared fixtures. The pytest process itself never imports torch, tensorflow or jax: every model runs in
the suite's own worker subprocesses, one per framework family, exactly as `bench verify` runs them."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from opcases import CASES  # noqa: E402

# The test-only targets (suite/targets/testing) exist only behind this switch; worker subprocesses inherit it.
os.environ["BENCH_TESTING_TARGETS"] = "1"
# A repro bundle tries smaller input sizes, one cell each: only the tests of that (which set it back) pay for it.
os.environ["BENCH_DIAGNOSE_SHRINK_CELLS"] = "0"


def bench(*args, cwd=REPO, env=None, timeout=300) -> subprocess.CompletedProcess:
    """``bench ARGS`` as a user runs it (a subprocess; text output captured)."""
    return subprocess.run([sys.executable, "-m", "suite.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=timeout)


@pytest.fixture(scope="session")
def cpu_profile():
    from suite.profiles import load_profiles

    return load_profiles(REPO / "hardware_profiles")["cpu"]


@pytest.fixture(scope="session")
def opcase_dir(tmp_path_factory) -> Path:
    """The op cases written as workload files, so workers load them like any workload."""
    d = tmp_path_factory.mktemp("opcases")
    for case in CASES:
        (d / f"{case['name']}.yaml").write_text(yaml.safe_dump(case, sort_keys=False))
    return d


def run_cells(workloads, target_ids, profile, *, timed=False, quick=True, timeout_s=600.0, mode="inference"):
    """Runs cells through plan + scheduler (worker subprocesses); returns {(workload, params, target): record}."""
    from suite.plan import make_plan
    from suite.runner import execute_plan
    from suite.targets.registry import get_target

    cells = make_plan(workloads, [get_target(t) for t in target_ids], {profile.name: profile},
                      {profile.name: (True, "")}, mode=mode, timed=timed)
    records = execute_plan(cells, "test", results_dir=None, quick=quick, timeout_s=timeout_s,
                           progress_stream=open("/dev/null", "w"))
    return {(r["workload"], r["params"], r["target"]): r for r in records}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A module's own $BENCH_CACHE_DIR (an empty folder; worker subprocesses inherit it), so what a test
    checks about caching is not disturbed by a developer's cache or another module's artifacts."""
    d = tmp_path_factory.mktemp("bench-cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("BENCH_CACHE_DIR", str(d))
    yield d
    mp.undo()


@pytest.fixture(scope="session")
def verified_cache():
    return {}


def available(target_id: str) -> bool:
    """The target's framework is importable here."""
    from suite.plan import missing_requirement
    from suite.targets.registry import get_target

    return not missing_requirement(get_target(target_id))


def assert_passes(rec: dict, mode: str) -> None:
    """A verification record passed; in train mode with gradients and loss close, not just inside tolerance."""
    assert rec["status"] == "pass", rec.get("status_reason")
    if mode == "train":
        assert rec["grad_cosine"] > 0.9999 and rec["loss_abs_err"] < 1e-4, rec.get("status_reason")


def skip_if_missing(target_id: str) -> None:
    """Skips on a capability (the framework, or an export target's converter, is not importable; e.g. the
    opt-in litert-torch), never on a framework name."""
    from suite.plan import missing_module, missing_requirement
    from suite.targets.registry import get_target

    info = get_target(target_id)
    missing = missing_requirement(info) or (missing_module(info.export.requires) if info.export else None)
    if missing:
        pytest.skip(missing)
