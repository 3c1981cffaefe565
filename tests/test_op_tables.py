"""Every framework's op table and weight table cover the op catalogue: a forgotten op fails here, not in
a run. Importing the tables must not import the framework (the pytest process never imports one)."""
from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from conftest import REPO
from suite.ops import OPS
from suite.targets.common.optables import coverage_problems, has_params

FRAMEWORKS = ("torch", "tensorflow", "jax", "keras")


def tables(fw):
    ops = importlib.import_module(f"suite.targets.{fw}.ops")
    weights = importlib.import_module(f"suite.targets.{fw}.weights")
    return ops.OPS, ops.UNSUPPORTED, weights.WEIGHTS


@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_tables_cover_the_catalogue(fw):
    assert coverage_problems(fw, *tables(fw)) == []


@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_a_removed_op_fails_the_check(fw):
    """The check can fail: each framework's table, with one op taken out, is reported."""
    ops, unsupported, weights = tables(fw)
    for op in ("lstm", "relu"):
        if op in ops:
            fewer = {k: v for k, v in ops.items() if k != op}
            assert coverage_problems(fw, fewer, unsupported, weights) == [
                f"{fw}: op {op!r} is in neither ops.OPS nor ops.UNSUPPORTED"]
    dense_w = {k: v for k, v in weights.items() if k != "dense"}
    assert coverage_problems(fw, ops, unsupported, dense_w) == [
        f"{fw}: op 'dense' has parameters but no entry in weights.WEIGHTS"]


def test_the_check_rejects_unknown_and_unexplained_entries():
    ops = {op: (lambda *a: None) for op in OPS}
    assert coverage_problems("x", {**ops, "rms_nrom": len}, {}) == [
        "x: op 'rms_nrom' is not in the catalogue (suite/ops.py)"]
    del ops["lstm"]
    assert coverage_problems("x", ops, {"lstm": ""}) == ["x: op 'lstm' is declared unsupported without a reason"]


def test_has_params_follows_the_catalogue():
    assert {op for op in OPS if has_params(op)} == {"dense", "conv2d", "batch_norm", "layer_norm", "embedding",
                                                    "attention", "lstm", "gru", "conv2d_transpose", "rms_norm",
                                                    "position_embedding", "class_token"}


def test_tables_import_no_framework():
    mods = ", ".join(f"suite.targets.{fw}.{m}" for fw in FRAMEWORKS for m in ("ops", "weights", "runtime"))
    code = f"import sys, {mods}; bad = {{'torch', 'tensorflow', 'jax', 'keras'}} & set(sys.modules); assert not bad, bad"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
