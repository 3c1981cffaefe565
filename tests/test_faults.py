"""Fault isolation: a crash, segfault, hang, out-of-memory or error in one cell becomes a row with a
status and the tail of the worker's stderr, and the cells after it still run (the worker is restarted)."""
from __future__ import annotations

import pytest

from conftest import REPO, run_cells
from suite.spec import load_workload

FAULTS = {
    "crash": ("crashed", "SIGABRT"),
    "segfault": ("crashed", "SIGSEGV"),
    "hang": ("timeout", "no result within"),
    "oom": ("crashed", "out of memory"),
    "error": ("error", "injected failure"),
    "nan": ("nan", "NaN"),
    "garbage": ("fail", "outside rtol"),
}


@pytest.fixture(scope="module")
def fault_records(cpu_profile):
    from suite.plan import make_plan
    from suite.runner import execute_plan
    from suite.targets.registry import get_target

    wl = load_workload(REPO / "workloads" / "mlp_classifier.yaml")
    # Each faulty target sits between two healthy ones in the same worker family: the healthy cells
    # after a fault prove the run went on with a fresh worker.
    ids = ["test:numpy"]
    for f in FAULTS:
        ids += [f"test:{f}", "test:numpy"]
    cells = [c for c in make_plan([wl], [get_target(t) for t in ids], {"cpu": cpu_profile}, {"cpu": (True, "")})
             if c.params_dict["batch"] == 1]
    # make_plan yields one cell per target id; duplicated healthy ids collapse, so re-expand in order.
    by_id = {c.target.id: c for c in cells}
    ordered = [by_id[t] for t in ids]
    return execute_plan(ordered, "faults", results_dir=None, quick=True, timeout_s=20, memory_limit=4 * 2**30,
                        progress_stream=open("/dev/null", "w"))


@pytest.mark.parametrize("fault", FAULTS)
def test_fault_becomes_a_row(fault, fault_records):
    status, text = FAULTS[fault]
    i = 1 + 2 * list(FAULTS).index(fault)
    rec = fault_records[i]
    assert rec["target"] == f"test:{fault}"
    assert rec["status"] == status, rec.get("status_reason")
    assert text in (rec.get("status_reason") or ""), rec.get("status_reason")
    after = fault_records[i + 1]
    assert after["target"] == "test:numpy" and after["status"] == "pass", after.get("status_reason")
