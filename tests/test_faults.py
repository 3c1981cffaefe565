"""Fault isolation: a crash, segfault, hang, out-of-memory or error in one cell becomes a row with a
status and the tail of the worker's stderr, and the cells after it still run (the worker is restarted)."""
from __future__ import annotations

import dataclasses

import pytest

from conftest import REPO
from suite.engine import TimingConfig
from suite.spec import load_workload

# fault -> (status, text of the reason, stage): test:error and test:hang fail while building, the others
# in the first call or its comparison (suite/targets/testing/fault.py); a dead worker's stage is the one
# it announced before it died.
FAULTS = {
    "crash": ("crashed", "SIGABRT", "verify"),
    "segfault": ("crashed", "SIGSEGV", "verify"),
    "hang": ("timeout", "no result within", "build"),
    "oom": ("crashed", "out of memory", "verify"),
    "error": ("error", "injected failure", "build"),
    "nan": ("nan", "NaN", "verify"),
    "garbage": ("fail", "outside rtol", "verify"),
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
    status, text, stage = FAULTS[fault]
    i = 1 + 2 * list(FAULTS).index(fault)
    rec = fault_records[i]
    assert rec["target"] == f"test:{fault}"
    assert rec["status"] == status, rec.get("status_reason")
    assert text in (rec.get("status_reason") or ""), rec.get("status_reason")
    assert rec["stage"] == stage
    after = fault_records[i + 1]
    assert after["target"] == "test:numpy" and after["status"] == "pass", after.get("status_reason")
    assert after["stage"] is None


def test_fault_records_write(fault_records, tmp_path):
    """Every row the worker and the scheduler produced, faults included, fits the schema."""
    from suite import results

    results.write_records(fault_records, tmp_path, "faults", "all")
    df = results.read_results(tmp_path)
    assert list(df["status"]) == [r["status"] for r in fault_records]


def _task(target, **kw):
    return {"workload_path": str(REPO / "workloads" / "mlp_classifier.yaml"), "params": {"batch": 1},
            "target": target, "mode": "run", "timing": dataclasses.asdict(TimingConfig.quick()), **kw}


def test_an_error_while_timing_has_stage_time(cpu_profile, monkeypatch):
    """In-process: the worker announces each stage; what was measured before the failure stays."""
    from suite import engine, worker

    def broken(*args, **kwargs):
        raise RuntimeError("timer broke")

    monkeypatch.setattr(engine, "measure", broken)
    stages = []
    rec = worker.run_task(_task("test:numpy"), worker.CellState(), cpu_profile, stages.append)
    assert stages == ["build", "verify", "time"]
    assert (rec["status"], rec["stage"]) == ("error", "time") and "timer broke" in rec["status_reason"]
    assert rec["first_call_s"] > 0 and rec["max_abs_err"] is not None and "latency_median_s" not in rec


def test_pass_has_no_stage_and_export_targets_load(cpu_profile):
    from suite import worker

    rec = worker.run_task(_task("test:numpy", mode="verify"), worker.CellState(), cpu_profile)
    assert rec["status"] == "pass" and "stage" not in rec
    # an export target builds by loading its artifact: a train cell of one stops there (no training step)
    stages = []
    rec = worker.run_task(_task("torch>onnx-nan@onnxruntime", train=True), worker.CellState(), cpu_profile,
                          stages.append)
    assert (rec["status"], rec["stage"], stages) == ("unsupported", "load", ["load"]), rec.get("status_reason")
