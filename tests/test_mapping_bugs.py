"""The check can fail: a deliberately wrong weight mapping comes out as `fail` with a large error,
while the same op on the correct target passes (tests/test_targets.py)."""
from __future__ import annotations

import pytest

from conftest import run_cells, skip_if_missing
from suite.spec import load_workload

BUGS = [
    ("torch:bug-dense-kernel", "dense"),
    ("torch:bug-conv-kernel", "conv_same_s2"),
    ("tensorflow:bug-conv-kernel", "conv_valid"),
    ("tensorflow:bug-conv-kernel", "conv_depthwise_s2"),
    ("jax:bug-lstm-gates", "lstm_sequence"),
    ("keras:bug-lstm-gates", "lstm_sequence"),
]


@pytest.mark.parametrize("target,case", BUGS, ids=[f"{t}-{c}" for t, c in BUGS])
def test_wrong_mapping_fails_with_large_error(target, case, opcase_dir, cpu_profile):
    skip_if_missing(target)
    records = run_cells([load_workload(opcase_dir / f"{case}.yaml")], [target], cpu_profile)
    (rec,) = records.values()
    assert rec["status"] == "fail", rec.get("status_reason")
    assert rec["max_abs_err"] > 1e-2 and rec["mismatch_fraction"] > 0.1
    assert "outside rtol" in rec["status_reason"]
