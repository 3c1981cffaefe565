"""conv2d_transpose and resize.

The reference is checked against hand-computed values and against an identity that does not share its
code (a transposed conv is the adjoint of the conv2d reference); the catalogue refuses the attribute
combinations the README rules out; every native target trains through both ops; and the classic resize
trap (align_corners=True where half-pixel centres are asked) comes out ``fail`` with a large error, in
inference and in train mode. The op cases themselves run on every target in tests/test_targets.py and
through tests/test_gradients.py.
"""
from __future__ import annotations

import numpy as np
import pytest
import yaml

from conftest import run_cells, skip_if_missing
from refcover import covers
from suite import reference as ref
from suite.ops import conv_transpose_out
from suite.spec import SpecError, load_workload, parse_workload

NATIVE = ["torch:eager", "tensorflow:function", "jax:jit", "keras[jax]", "keras[tensorflow]", "keras[torch]"]
TRAP = "torch:bug-resize-align-corners"


def _conv_t(x, kernel, bias=None, **attrs):
    a = dict(strides=(1, 1), padding="valid", output_padding=(0, 0))
    a.update(attrs)
    p = {"kernel": kernel} if bias is None else {"kernel": kernel, "bias": bias}
    return ref.conv2d_transpose(x, p, filters=kernel.shape[1], use_bias=bias is not None, **a)


# ---- the reference ---------------------------------------------------------------------------------

@pytest.mark.parametrize("k,s,padding,op", [(3, 2, "valid", 0), (3, 2, "valid", 1), (4, 2, "same", 0),
                                             (3, 2, "same", 0), (2, 1, "same", 0), (2, 3, "same", 0),
                                             (1, 2, "valid", 1), (5, 3, "same", 0)])
def test_conv_transpose_is_the_adjoint_of_conv2d(k, s, padding, op):
    """<conv_t(x; K), y> == <x, conv2d(y; K)>: with the IOHW kernel read as conv2d's OIHW (O = C), the
    stride-s conv of the transposed conv's output size lands back on x's size with the same crops."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 4, 5))
    kern = rng.normal(size=(3, 2, k, k))  # C=3 in, 2 filters
    y = _conv_t(x, kern, kernel_size=(k, k), strides=(s, s), padding=padding, output_padding=(op, op))
    assert y.shape == (2, 2, conv_transpose_out(4, k, s, padding, op)[0], conv_transpose_out(5, k, s, padding, op)[0])
    g = rng.normal(size=y.shape)
    back = ref.conv2d(g, {"kernel": kern}, filters=3, kernel_size=(k, k), strides=(s, s), dilation=(1, 1),
                      padding=padding, groups=1, use_bias=False)
    assert back.shape == x.shape
    np.testing.assert_allclose((y * g).sum(), (x * back).sum(), rtol=1e-12)


@covers("conv2d_transpose")
def test_conv_transpose_by_hand():
    """One input pixel stamps the kernel at (i*s, j*s); SAME crops total // 2 = 0 rows first when
    k - s = 1 (the last row goes): TensorFlow's rule, not torch's padding=1/output_padding=1."""
    x = np.zeros((1, 1, 2, 2))
    x[0, 0, 1, 0] = 1.0
    kern = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    full = _conv_t(x, kern, kernel_size=(3, 3), strides=(2, 2))
    want = np.zeros((5, 5))
    want[2:5, 0:3] = kern[0, 0]
    np.testing.assert_array_equal(full[0, 0], want)
    same = _conv_t(x, kern, kernel_size=(3, 3), strides=(2, 2), padding="same")
    np.testing.assert_array_equal(same[0, 0], want[:4, :4])
    padded = _conv_t(x, kern, np.array([0.5]), kernel_size=(3, 3), strides=(2, 2), output_padding=(1, 1))
    np.testing.assert_array_equal(padded[0, 0], np.pad(want, ((0, 1), (0, 1))) + 0.5)  # zeros plus bias


def test_conv_transpose_same_with_kernel_below_stride_pads_the_end():
    """k < s under SAME: the full output ((H-1)s + k) is shorter than H*s; TensorFlow pads s - k zero rows
    (plus bias) at the bottom/right. The README states this choice."""
    assert conv_transpose_out(3, 2, 3, "same", 0) == (9, 0, -1)
    x = np.ones((1, 1, 3, 3))
    kern = np.ones((1, 1, 2, 2))
    y = _conv_t(x, kern, np.array([0.25]), kernel_size=(2, 2), strides=(3, 3), padding="same")
    assert y.shape == (1, 1, 9, 9)
    np.testing.assert_array_equal(y[0, 0, 2::3, :], 0.25)
    np.testing.assert_array_equal(y[0, 0, :, 2::3], 0.25)
    np.testing.assert_array_equal(y[0, 0, 0:2, 0:2], 1.25)


def _resize_row(row, mode, scale, align_corners=False):
    x = np.asarray(row, dtype=np.float64).reshape(1, 1, 1, -1)
    return ref.resize(x, {}, mode, (1, scale), align_corners)[0, 0, 0]


@covers("resize")
def test_resize_by_hand():
    np.testing.assert_array_equal(_resize_row([0, 1], "nearest", 2), [0, 0, 1, 1])
    np.testing.assert_array_equal(_resize_row([0, 1, 2], "nearest", 3), [0, 0, 0, 1, 1, 1, 2, 2, 2])
    # half-pixel centres: src = (dst + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25 -> clamped to [0, 1]
    np.testing.assert_allclose(_resize_row([0, 1], "bilinear", 2), [0, 0.25, 0.75, 1], rtol=0, atol=1e-15)
    np.testing.assert_allclose(_resize_row([0, 4], "bilinear", 3), [0, 0, 4 / 3, 8 / 3, 4, 4], atol=1e-14)
    # align_corners: src = dst * (in - 1) / (out - 1)
    np.testing.assert_allclose(_resize_row([0, 1], "bilinear", 2, True), [0, 1 / 3, 2 / 3, 1], atol=1e-15)


def test_resize_is_separable_and_keeps_constants():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 3, 4, 5))
    y = ref.resize(x, {}, "bilinear", (2, 3), False)
    rows = ref.resize(x, {}, "bilinear", (2, 1), False)
    np.testing.assert_allclose(y, ref.resize(rows, {}, "bilinear", (1, 3), False), rtol=1e-12)
    for mode, ac in (("nearest", False), ("bilinear", False), ("bilinear", True)):
        np.testing.assert_allclose(ref.resize(np.full((1, 1, 3, 4), 2.5), {}, mode, (2, 3), ac), 2.5, rtol=1e-14)


# ---- the catalogue ---------------------------------------------------------------------------------

def _node_wl(**node):
    return {"name": "bad", "inputs": [{"name": "x", "shape": ["batch", 3, 4, 5]}], "sweep": {"batch": [1]},
            "graph": [dict({"name": "y", "input": "x"}, **node)], "outputs": ["y"]}


BAD = [
    (dict(op="conv2d_transpose", filters=2, kernel_size=3, strides=2, padding="same", output_padding=1),
     "output_padding", "only allowed with padding 'valid'"),
    (dict(op="conv2d_transpose", filters=2, kernel_size=3, strides=2, output_padding=2),
     "output_padding", "must be smaller than the stride"),
    (dict(op="conv2d_transpose", filters=2, kernel_size=3, output_padding=-1), "output_padding", "non-negative"),
    (dict(op="conv2d_transpose", filters=2), "kernel_size", "missing"),
    (dict(op="resize", mode="nearest", scale=2, align_corners=True), "align_corners", "only meaningful"),
    (dict(op="resize", mode="bicubic", scale=2), "mode", "'nearest' or 'bilinear'"),
    (dict(op="resize", mode="bilinear", scale=1.5), "scale", "positive integer"),
    (dict(op="resize", mode="bilinear"), "scale", "missing"),
]


@pytest.mark.parametrize("node,field,expect", BAD, ids=[f"{b[0]['op']}-{b[1]}-{i}" for i, b in enumerate(BAD)])
def test_bad_attributes_are_refused(node, field, expect):
    with pytest.raises(SpecError) as info:
        parse_workload(_node_wl(**node), "bad.yaml")
    msg = str(info.value)
    assert field in msg and expect in msg, msg


def test_defaults_and_shapes():
    wl = parse_workload(_node_wl(op="conv2d_transpose", filters=2, kernel_size=[3, 2], strides=[2, 3],
                                 output_padding=[1, 2]), "ok.yaml")
    assert wl.shapes({"batch": 1})["y"] == (1, 2, 3 * 2 + 3 + 1, 4 * 3 + 2 + 2)
    wl = parse_workload(_node_wl(op="resize", mode="bilinear", scale=[2, 3]), "ok.yaml")
    assert wl.nodes[0].attrs["align_corners"] is False
    assert wl.shapes({"batch": 1})["y"] == (1, 3, 8, 15)


# ---- native targets in train mode, and the trap ------------------------------------------------------

TRAIN_WL = {
    "name": "spatial_train",
    "inputs": [{"name": "x", "shape": ["batch", 3, 4, 5]}],
    "sweep": {"batch": [2]},
    "graph": [
        {"name": "up1", "op": "conv2d_transpose", "input": "x", "filters": 4, "kernel_size": 3, "strides": 2,
         "padding": "same"},
        {"name": "r1", "op": "resize", "input": "up1", "mode": "bilinear", "scale": 2},
        {"name": "up2", "op": "conv2d_transpose", "input": "r1", "filters": 2, "kernel_size": [3, 2],
         "strides": [2, 3], "output_padding": [1, 2]},
        {"name": "r2", "op": "resize", "input": "up2", "mode": "nearest", "scale": [1, 2]},
        {"name": "up3", "op": "conv2d_transpose", "input": "r2", "filters": 2, "kernel_size": 2, "strides": 3,
         "padding": "same", "use_bias": False},
        {"name": "y", "op": "resize", "input": "up3", "mode": "bilinear", "scale": 2, "align_corners": True},
    ],
    "outputs": ["y"],
    "train": {"loss": "mean_squared_error", "optimizer": {"kind": "sgd", "learning_rate": 0.01, "momentum": 0.9}},
}


@pytest.fixture(scope="module")
def train_wl(tmp_path_factory):
    path = tmp_path_factory.mktemp("spatial") / "spatial_train.yaml"
    path.write_text(yaml.safe_dump(TRAIN_WL, sort_keys=False))
    return load_workload(path)


@pytest.fixture(scope="module")
def train_records(train_wl, cpu_profile):
    targets = [t for t in NATIVE if not _missing(t)]
    return run_cells([train_wl], targets, cpu_profile, mode="train") if targets else {}


def _missing(target):
    from suite.plan import missing_requirement
    from suite.targets.registry import get_target
    return missing_requirement(get_target(target))


@pytest.mark.parametrize("target", NATIVE)
def test_native_train_step_matches_reference(target, train_records):
    skip_if_missing(target)
    (rec,) = [r for (_, _, t), r in train_records.items() if t == target]
    assert rec["status"] == "pass", f"{rec['status']}: {rec.get('status_reason')}"


def test_align_corners_trap_fails_in_inference(opcase_dir, cpu_profile):
    skip_if_missing(TRAP)
    wls = [load_workload(opcase_dir / f"{c}.yaml") for c in ("resize_bilinear_x2", "resize_nearest_x2")]
    records = {w: r for (w, _, _), r in run_cells(wls, [TRAP], cpu_profile).items()}
    rec = records["resize_bilinear_x2"]
    assert rec["status"] == "fail", rec.get("status_reason")
    assert rec["max_abs_err"] > 1e-1 and rec["mismatch_fraction"] > 0.5
    assert "outside rtol" in rec["status_reason"]
    assert records["resize_nearest_x2"]["status"] == "pass"  # the trap is bilinear's only


def test_align_corners_trap_fails_in_train_mode(train_wl, cpu_profile):
    skip_if_missing(TRAP)
    (rec,) = run_cells([train_wl], [TRAP], cpu_profile, mode="train").values()
    assert rec["status"] == "fail", rec.get("status_reason")
    # the forward output already differs (~1e-1 relative); the gradients are off by far more than 1e-3
    assert "relative L2 error" in rec["status_reason"], rec["status_reason"]
