"""Train mode for ``jax:jit``: one jitted optax step per shipped workload, through the real worker subprocess.

Each step is verified against the float64 reference (suite.training.reference_train): the loss of every
step, the first step's gradients mapped back to the canonical layout, and the parameters after the last
step. All cells run in one worker (module-scoped), then one test per cell asserts on its record.
"""
from __future__ import annotations

import json

import pytest

from conftest import REPO, skip_if_missing
from suite.spec import load_workload

TARGET = "jax:jit"
# (workload, batch): batch 1 where train mode supports it; the MLP's batch norm over (N, C) needs N > 1.
CASES = [("mlp_classifier", 32), ("resnet_cnn", 1), ("mobilenet_cnn", 1), ("lstm_classifier", 1),
         ("gpt_block", 1), ("transformer_encoder", 1), ("text_classifier", 1)]


def _run_train(cases, profile) -> dict:
    """Plans the train-mode cells of ``cases`` and runs them in worker subprocesses: {(workload, batch): record}."""
    from suite.plan import make_plan
    from suite.runner import execute_plan
    from suite.targets.registry import get_target

    names = {w for w, _ in cases}
    wls = [load_workload(REPO / "workloads" / f"{w}.yaml") for w in sorted(names)]
    cells = make_plan(wls, [get_target(TARGET)], {profile.name: profile}, {profile.name: (True, "")}, mode="train")
    cells = [c for c in cells if (c.workload.name, c.params_dict["batch"]) in set(cases)]
    records = execute_plan(cells, "test", results_dir=None, quick=True, timeout_s=600.0,
                           progress_stream=open("/dev/null", "w"))
    return {(r["workload"], json.loads(r["params"])["batch"]): r for r in records}


@pytest.fixture(scope="module")
def train_records(cpu_profile):
    skip_if_missing(TARGET)
    return _run_train(CASES + [("mlp_classifier", 1)], cpu_profile)


@pytest.mark.parametrize("workload,batch", CASES, ids=[f"{w}-b{b}" for w, b in CASES])
def test_train_step_matches_reference(workload, batch, train_records):
    rec = train_records[(workload, batch)]
    assert rec["mode"] == "train"
    assert rec["status"] == "pass", f"{rec['status']}: {rec.get('status_reason')}"
    assert rec["loss"] is not None and rec["loss"] > 0
    assert rec["grad_cosine"] > 0.9999, rec["grad_cosine"]
    assert rec["grad_max_abs_err"] is not None and rec["param_max_abs_err"] is not None
    assert rec["layout"] == "NHWC/HWIO"
    assert rec["compile_s"] is not None and rec["compile_s"] > 0
    assert "optax" in json.loads(rec["versions"])


def test_batch_norm_over_one_value_is_unsupported(train_records):
    """Batch statistics over (N=1, C) have one value per channel: refused with the reason, not run."""
    rec = train_records[("mlp_classifier", 1)]
    assert rec["status"] == "unsupported" and "batch statistics" in rec["status_reason"], rec["status_reason"]
