"""TensorFlow training steps (train mode) of the shipped workloads, against the float64 reference step.

The cells run through plan + scheduler in the suite's own worker subprocess, exactly as
`bench verify --mode train` runs them; one test per (target, workload, batch) asserts on its record.
"""
from __future__ import annotations

import pytest

from conftest import REPO, skip_if_missing
from suite.spec import load_workload

TARGETS = ("tensorflow:function", "tensorflow:xla")
# (workload, batch): one of each family of ops (batch norm, conv, recurrence, attention) at the
# smallest batch that trains; mlp_classifier's batch norm needs more than one value per channel.
CELLS = (("mlp_classifier", 32), ("resnet_cnn", 1), ("lstm_classifier", 1), ("gpt_block", 1),
         ("transformer_encoder", 1))
REFUSED = (("mlp_classifier", 1),)


def _run_train_cells(profile, wanted):
    """{(workload, batch, target): record} for the wanted (workload, batch) cells in train mode."""
    from suite.plan import make_plan
    from suite.runner import execute_plan
    from suite.targets.registry import get_target

    names = sorted({w for w, _ in wanted})
    workloads = [load_workload(REPO / "workloads" / f"{n}.yaml") for n in names]
    cells = make_plan(workloads, [get_target(t) for t in TARGETS], {profile.name: profile},
                      {profile.name: (True, "")}, mode="train")
    cells = [c for c in cells if (c.workload.name, c.params_dict["batch"]) in wanted]
    with open("/dev/null", "w") as devnull:
        records = execute_plan(cells, "test", results_dir=None, quick=True, timeout_s=600.0,
                               progress_stream=devnull)
    return {(r["workload"], r["batch_size"], r["target"]): r for r in records}


@pytest.fixture(scope="module")
def train_records(cpu_profile):
    for t in TARGETS:
        skip_if_missing(t)
    return _run_train_cells(cpu_profile, set(CELLS) | set(REFUSED))


def _id(cell):
    return f"{cell[0]}-b{cell[1]}"


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("cell", CELLS, ids=_id)
def test_training_step_matches_reference(train_records, target, cell):
    rec = train_records[(cell[0], cell[1], target)]
    assert rec["status"] == "pass", rec.get("status_reason")
    assert rec["mode"] == "train"
    assert rec["loss"] is not None and rec["loss"] > 0
    assert rec["grad_cosine"] > 0.9999
    assert rec["step_peak_bytes"] and rec["step_peak_bytes"] > 0
    assert rec["compile_s"] is not None and rec["compile_s"] > 0
    assert rec["first_call_s"] is not None and rec["first_call_s"] > 0
    assert rec["layout"].startswith("NHWC")


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("cell", REFUSED, ids=_id)
def test_batch_norm_with_one_value_per_channel_is_unsupported(train_records, target, cell):
    rec = train_records[(cell[0], cell[1], target)]
    assert rec["status"] == "unsupported"
    assert "batch_norm" in rec["status_reason"] and "one value per channel" in rec["status_reason"]
