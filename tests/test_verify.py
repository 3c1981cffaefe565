"""suite.verify: the figures and statuses of a comparison with the float64 reference."""
from __future__ import annotations

import numpy as np
import pytest

from suite.spec import parse_workload
from suite.verify import REL_EPS, TOLERANCES, compare, cosine, summarise, tolerance_for, verify_outputs

RTOL, ATOL = 1e-4, 1e-5


def ref_array(shape=(4, 5), seed=0):
    return np.random.default_rng(seed).normal(size=shape) + 3.0  # away from 0: relative errors are meaningful


def test_identical_passes_with_zero_errors():
    ref = ref_array()
    n = compare([ref.astype(np.float32).astype(np.float64)], [ref.astype(np.float32).astype(np.float64)], RTOL, ATOL)
    assert n.status == "pass"
    assert n.max_abs_err == 0.0 and n.max_rel_err == 0.0 and n.mismatch_fraction == 0.0
    assert n.cosine == pytest.approx(1.0, abs=1e-15)
    assert n.top1_agreement is None and n.reason == ""
    assert (n.rtol, n.atol) == (RTOL, ATOL)


@pytest.mark.parametrize("out_dtype", [np.float32, np.float64], ids=["float32_out", "float64_out"])
def test_small_perturbation_within_tolerance_passes(out_dtype):
    ref = ref_array()
    out = (ref * (1 + 3e-5)).astype(out_dtype)
    n = compare([out], [ref], RTOL, ATOL)
    assert n.status == "pass"
    assert 0 < n.max_rel_err < RTOL
    assert n.mismatch_fraction == 0.0


def test_atol_covers_reference_zeros():
    ref = np.zeros((2, 3))
    assert compare([ref + 5e-6], [ref], RTOL, ATOL).status == "pass"
    n = compare([ref + 2e-5], [ref], RTOL, ATOL)
    assert n.status == "fail" and n.mismatch_fraction == 1.0
    assert n.max_rel_err == pytest.approx(2e-5 / REL_EPS)


def test_large_perturbation_fails_with_exact_figures():
    ref = np.array([[1.0, 2.0, 3.0, 4.0]])
    out = ref.copy()
    out[0, 1] = 2.5   # |diff| 0.5
    out[0, 3] = 4.25  # |diff| 0.25
    n = compare([out], [ref], RTOL, ATOL)
    assert n.status == "fail"
    assert n.mismatch_fraction == 0.5
    assert n.max_abs_err == 0.5
    assert n.max_rel_err == pytest.approx(0.5 / (2.0 + REL_EPS), rel=1e-15)
    assert n.reason == "2 of 4 values outside rtol=0.0001, atol=1e-05"


def test_figures_are_worst_over_all_outputs():
    a, b = np.array([1.0, 2.0, 3.0, 4.0]), np.array([10.0, 20.0, 30.0, 40.0])
    out_a = a.copy()
    out_a[0] = 1.5          # 1 bad of 4, |diff| 0.5, relative 0.5: the worst relative error
    out_b = b.copy()
    out_b[3] = 41.0         # 1 bad of 4, |diff| 1.0, relative 0.025: the worst absolute error
    n = compare([out_a, out_b], [a, b], RTOL, ATOL, names=["a", "b"])
    assert n.status == "fail"
    assert n.mismatch_fraction == 2 / 8
    assert n.max_abs_err == 1.0
    assert n.max_rel_err == pytest.approx(0.5 / (1.0 + REL_EPS), rel=1e-15)
    assert n.reason == "2 of 8 values outside rtol=0.0001, atol=1e-05"


@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "neg_inf"])
def test_non_finite_output_is_nan_status(bad_value):
    ref = ref_array((2, 5))
    out = ref.copy()
    out[1, 3] = bad_value
    n = compare([out], [ref], RTOL, ATOL, names=["logits"])
    assert n.status == "nan"
    assert n.mismatch_fraction == pytest.approx(1 / 10)
    assert n.reason.startswith("logits: 1 of 10 values")


@pytest.mark.parametrize("out_shape", [(4, 6), (5, 4), (20,), (1, 4, 5)], ids=["wider", "transposed", "flat",
                                                                               "extra_dim"])
def test_shape_mismatch(out_shape):
    ref = ref_array((4, 5))
    n = compare([np.zeros(out_shape)], [ref], RTOL, ATOL, names=["y"])
    assert n.status == "shape_mismatch"
    assert n.reason == f"y: shape {list(out_shape)}, expected [4, 5]"


@pytest.mark.parametrize("n_outputs", [0, 1, 3], ids=["none", "too_few", "too_many"])
def test_wrong_number_of_outputs_is_shape_mismatch(n_outputs):
    refs = [ref_array(seed=0), ref_array(seed=1)]
    outs = [ref_array(seed=i) for i in range(n_outputs)]
    n = compare(outs, refs, RTOL, ATOL)
    assert n.status == "shape_mismatch"
    assert n.reason == f"{n_outputs} outputs, expected 2"


@pytest.mark.parametrize("scale", [0.5, 3.0], ids=["half", "triple"])
def test_scaled_output_has_cosine_one_but_large_relative_error(scale):
    ref = ref_array()
    n = compare([ref * scale], [ref], RTOL, ATOL)
    assert n.status == "fail"
    assert n.cosine == pytest.approx(1.0, abs=1e-12)
    assert n.max_rel_err == pytest.approx(abs(scale - 1), rel=1e-5)
    assert n.mismatch_fraction == 1.0


def test_cosine_helper():
    assert cosine(np.array([1.0, 0.0]), np.array([0.0, 2.0])) == 0.0
    assert cosine(np.array([1.0, 2.0]), np.array([-1.0, -2.0])) == pytest.approx(-1.0)
    assert cosine(np.zeros(3), np.zeros(3)) == 1.0
    assert cosine(np.zeros(3), np.ones(3)) == 0.0


TOP1 = [
    # id, classes_axis, reference scores, output scores, expected agreement
    ("last_axis_3_of_4", -1, [[0, 1, 0], [1, 0, 0], [0, 0, 1], [0, 2, 1]],
     [[0, 1, 0], [1, 0, 0], [0, 0, 1], [0, 1, 2]], 0.75),
    ("axis1_all_agree", 1, [[0, 1, 0], [1, 0, 0]], [[0, 5, 1], [3, 2, 1]], 1.0),
    ("axis0_columns", 0, [[0, 1], [1, 0], [0, 0]], [[1, 1], [0, 0], [0, 0]], 0.5),
]


@pytest.mark.parametrize("axis,ref,out,want", [c[1:] for c in TOP1], ids=[c[0] for c in TOP1])
def test_top1_agreement_uses_classes_axis(axis, ref, out, want):
    n = compare([np.array(out, dtype=float)], [np.array(ref, dtype=float)], RTOL, ATOL, classes_axis=axis)
    assert n.top1_agreement == want


def test_top1_is_the_worst_output_and_skips_1d():
    r1, r2, r3 = np.eye(4), np.eye(4), np.arange(3.0)
    o2 = np.eye(4)[[0, 1, 3, 2]]  # rows 2 and 3 swapped: 2 of 4 agree
    n = compare([r1, o2, r3], [r1, r2, r3], RTOL, ATOL, classes_axis=-1)
    assert n.top1_agreement == 0.5
    assert compare([r3], [r3], RTOL, ATOL, classes_axis=-1).top1_agreement is None


def _workload(tolerance=None, classes_axis=None):
    data = {"name": "t", "inputs": [{"name": "x", "shape": ["batch", 3]}], "sweep": {"batch": [1]},
            "graph": [{"name": "y", "op": "relu", "input": "x"}], "outputs": ["y"]}
    if tolerance is not None:
        data["tolerance"] = tolerance
    if classes_axis is not None:
        data["classes_axis"] = classes_axis
    return parse_workload(data)


TOL_CASES = [
    ("defaults_float32", None, "float32", {"rtol": 1e-4, "atol": 1e-5}),
    ("defaults_float16", None, "float16", {"rtol": 1e-2, "atol": 1e-3}),
    ("override_both", {"rtol": 1e-3, "atol": 1e-4}, "float32", {"rtol": 1e-3, "atol": 1e-4}),
    ("override_rtol_only", {"rtol": 1e-2}, "float32", {"rtol": 1e-2, "atol": 1e-5}),
    ("override_atol_on_bfloat16", {"atol": 0.5}, "bfloat16", {"rtol": 5e-2, "atol": 0.5}),
]


@pytest.mark.parametrize("tolerance,dtype,want", [c[1:] for c in TOL_CASES], ids=[c[0] for c in TOL_CASES])
def test_tolerance_for_applies_workload_override(tolerance, dtype, want):
    before = {k: dict(v) for k, v in TOLERANCES.items()}
    assert tolerance_for(_workload(tolerance), dtype) == want
    assert TOLERANCES == before  # the defaults table is never mutated


def test_tolerance_for_without_workload():
    assert tolerance_for(None) == TOLERANCES["float32"]


def test_verify_outputs_uses_the_override_and_classes_axis():
    ref = np.array([[1.0, 2.0, 3.0]])
    out = ref * (1 + 1e-3)
    assert verify_outputs(_workload(), [out], [ref]).status == "fail"
    n = verify_outputs(_workload({"rtol": 1e-2}, classes_axis=-1), [out], [ref])
    assert n.status == "pass" and n.rtol == 1e-2 and n.atol == 1e-5
    assert n.top1_agreement == 1.0


def test_summarise_lists_statuses_in_order():
    assert summarise({"fail": 2, "pass": 5, "nan": 0}) == "5 pass, 2 fail"
