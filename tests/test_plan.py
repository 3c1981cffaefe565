"""The plan decides cells that cannot run without starting a worker, each with its reason."""
from __future__ import annotations

import dataclasses

from conftest import REPO
from suite.plan import make_plan
from suite.profiles import load_profiles
from suite.spec import load_workload
from suite.targets.registry import get_target

WL = load_workload(REPO / "workloads" / "mlp_classifier.yaml")
PROFILES = load_profiles(REPO / "hardware_profiles")


def _plan(targets, profiles, avail):
    return make_plan([WL], targets, {p: PROFILES[p] for p in profiles}, avail)


def test_missing_framework_is_skipped_with_install_hint():
    fake = dataclasses.replace(get_target("torch:eager"), id="fakefw:eager",
                               requires=(("no_such_framework_xyz", "fakefw"),))
    cells = _plan([fake], ["cpu"], {"cpu": (True, "")})
    assert [c.status for c in cells] == ["skipped", "skipped"]
    assert cells[0].reason == "no_such_framework_xyz is not installed: pip install 'bench-suite[fakefw]'"


def test_unavailable_profile_gives_skipped_rows_with_reason():
    cells = _plan([get_target("jax:jit")], ["cuda"], {"cuda": (False, "no CUDA device")})
    assert {(c.status, c.reason) for c in cells} == {("skipped", "profile cuda not available: no CUDA device")}


def test_device_the_target_cannot_use_is_unsupported():
    cells = _plan([get_target("torch:eager")], ["tpu"], {"tpu": (True, "")})
    assert {c.status for c in cells} == {"unsupported"}
    assert "does not run on tpu" in cells[0].reason


def test_profile_target_patterns_select_cells():
    assert _plan([get_target("torch:eager")], ["mobile-runtime"], {"mobile-runtime": (True, "")}) == []


def test_runnable_cells_cover_the_sweep():
    cells = _plan([get_target("test:numpy")], ["cpu"], {"cpu": (True, "")})
    assert [c.params_dict for c in cells] == [{"batch": 1}, {"batch": 32}]
    assert all(c.status is None for c in cells)
