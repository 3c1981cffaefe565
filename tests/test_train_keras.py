"""Train mode of the Keras 3 target: ``model.compile`` + ``train_on_batch`` on each backend, run through the
real worker subprocesses (one per keras-<backend> family) and verified against the float64 reference step:
loss of every step, gradients of the first step, parameters after the last one."""
from __future__ import annotations

import pytest

from conftest import REPO, skip_if_missing

TARGETS = ["keras[jax]", "keras[tensorflow]", "keras[torch]"]
# One sweep point per workload, chosen to keep the module to a few minutes: every op family the Keras
# target maps (dense + batch norm, conv + residual + batch norm on images, stacked LSTM, causal
# attention + layer norm + embedding, a two-output model whose loss reads one output), both optimisers
# (sgd with momentum / nesterov, adam). mlp_classifier needs batch > 1: its batch norm is over (N, C).
CELLS = {"mlp_classifier": 32, "resnet_cnn": 1, "lstm_classifier": 1, "gpt_block": 1, "text_classifier": 1}


@pytest.fixture(scope="module")
def train_records(cpu_profile):
    from suite.plan import make_plan, missing_requirement
    from suite.runner import execute_plan
    from suite.spec import load_workload
    from suite.targets.registry import get_target

    targets = [get_target(t) for t in TARGETS if not missing_requirement(get_target(t))]
    if not targets:
        pytest.skip("no Keras backend is installed")
    wls = [load_workload(REPO / "workloads" / f"{name}.yaml") for name in CELLS]
    cells = [c for c in make_plan(wls, targets, {cpu_profile.name: cpu_profile}, {cpu_profile.name: (True, "")},
                                  mode="train")
             if c.params_dict["batch"] == CELLS[c.workload.name]]
    records = execute_plan(cells, "test-train-keras", results_dir=None, quick=True, timeout_s=600.0,
                           progress_stream=open("/dev/null", "w"))
    return {(r["workload"], r["target"]): r for r in records}


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("workload", list(CELLS))
def test_keras_train_step_matches_reference(workload, target, train_records):
    skip_if_missing(target)
    rec = train_records[(workload, target)]
    assert rec["status"] == "pass", f"{rec['status']}: {rec.get('status_reason')}"
    assert rec["mode"] == "train"
    assert rec["loss"] is not None and rec["loss"] > 0
    assert rec["grad_cosine"] > 0.9999
    assert "train_on_batch" in rec["layout"] and "jit_compile=" in rec["layout"]
    assert '"keras"' in rec["versions"]
    if target != "keras[torch]":  # jax and tensorflow trace and compile the step in build_train
        assert rec["compile_s"] > 0
