"""Every op and every shipped workload, in every framework target, against the NumPy reference.

Each target's cells run in one worker subprocess (cached per session), then one test per
(target, case) asserts on its record, so the first failure hides nothing.
"""
from __future__ import annotations

import json

import pytest

from conftest import REPO, run_cells, skip_if_missing
from opcases import CASES
from suite.spec import load_workload, load_workloads
from suite.targets.registry import TARGETS

NATIVE = [t for t, info in TARGETS.items() if not info.options.get("hidden")]
SHIPPED = sorted(p.stem for p in (REPO / "workloads").glob("*.yaml"))


def _opcase_records(target, opcase_dir, cpu_profile, cache):
    key = ("ops", target)
    if key not in cache:
        wls = [load_workload(opcase_dir / f"{c['name']}.yaml") for c in CASES]
        cache[key] = run_cells(wls, [target], cpu_profile)
    return cache[key]


def _shipped_records(target, cpu_profile, cache):
    key = ("shipped", target)
    if key not in cache:
        cache[key] = run_cells(load_workloads(REPO / "workloads"), [target], cpu_profile)
    return cache[key]


def _assert_pass(rec):
    assert rec["status"] == "pass", f"{rec['status']}: {rec.get('status_reason')} (max_abs_err={rec.get('max_abs_err')})"
    assert rec["max_abs_err"] is not None and rec["cosine"] > 0.9999
    assert rec["layout"], "a target must record the native layout it used"


@pytest.mark.parametrize("case", [c["name"] for c in CASES])
@pytest.mark.parametrize("target", NATIVE)
def test_op_matches_reference(target, case, opcase_dir, cpu_profile, verified_cache):
    skip_if_missing(target)
    records = _opcase_records(target, opcase_dir, cpu_profile, verified_cache)
    (rec,) = [r for (w, _, _), r in records.items() if w == case]
    _assert_pass(rec)


@pytest.mark.parametrize("workload", SHIPPED)
@pytest.mark.parametrize("target", NATIVE)
def test_shipped_workload_matches_reference(target, workload, cpu_profile, verified_cache):
    skip_if_missing(target)
    records = _shipped_records(target, cpu_profile, verified_cache)
    recs = [r for (w, _, _), r in records.items() if w == workload]
    assert {json.loads(r["params"])["batch"] for r in recs} >= {1, 32}
    for rec in recs:
        _assert_pass(rec)
