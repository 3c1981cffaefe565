"""The NumPy float64 reference, op by op, against independent computations.

Every op is checked against something written differently: explicit loops, scipy, a formula, or numbers
worked out by hand. Attributes go through ``suite.spec`` so defaults are filled exactly as for a workload.
No ML framework is imported here.
"""
from __future__ import annotations

import importlib

import math

import numpy as np
import pytest
from scipy import signal, special

from opcases import CASES, op_workloads
from refcover import COVERED, MODULES, covers
from suite.ops import OPS
from suite.reference import OP_FUNCS, reference, run_op
from suite.spec import parse_workload
from suite.weights import init_weights, make_inputs



def attrs_for(op, in_shapes, dtypes=None, **attrs):
    """The op's attributes with defaults filled, as suite.spec validates them for a one-node workload."""
    dtypes = dtypes or ["float32"] * len(in_shapes)
    inputs = []
    for i, (s, dt) in enumerate(zip(in_shapes, dtypes)):
        spec = {"name": f"x{i}", "shape": ["batch", *s[1:]], "dtype": dt}
        if dt.startswith("int"):
            spec["distribution"] = {"kind": "randint", "low": 0, "high": 2}
        inputs.append(spec)
    node = {"name": "y", "op": op, **attrs}
    if len(in_shapes) == 1:
        node["input"] = "x0"
    else:
        node["inputs"] = [f"x{i}" for i in range(len(in_shapes))]
    wl = parse_workload({"name": "t", "inputs": inputs, "sweep": {"batch": [in_shapes[0][0]]},
                         "graph": [node], "outputs": ["y"]}, "<test>")
    return dict(wl.nodes[0].attrs)


def rng(seed=0):
    return np.random.default_rng(seed)


# ---------------------------------------------------------------- dense

@covers("dense")
@pytest.mark.parametrize("in_shape,use_bias", [((3, 5), True), ((2, 4, 5), True), ((2, 4, 5), False)],
                         ids=["2d_bias", "3d_bias", "3d_nobias"])
def test_dense_matches_loops(in_shape, use_bias):
    r = rng()
    x = r.normal(size=in_shape)
    units = 3
    p = {"kernel": r.normal(size=(in_shape[-1], units)), "bias": r.normal(size=units)}
    if not use_bias:
        del p["bias"]
    y = run_op("dense", [x], p, attrs_for("dense", [in_shape], units=units, use_bias=use_bias))
    flat = x.reshape(-1, in_shape[-1])
    want = np.zeros((flat.shape[0], units))
    for row in range(flat.shape[0]):
        for u in range(units):
            acc = p["bias"][u] if use_bias else 0.0
            for k in range(in_shape[-1]):
                acc += flat[row, k] * p["kernel"][k, u]
            want[row, u] = acc
    np.testing.assert_allclose(y, want.reshape(in_shape[:-1] + (units,)), rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- conv2d

def tf_same_pad(size, k, s, d):
    """TensorFlow's SAME rule, written out again from workloads/README.md (not imported)."""
    out = math.ceil(size / s)
    pad = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
    return pad // 2, pad - pad // 2


def naive_conv2d(x, kernel, bias, strides, dilation, padding, groups):
    n, c, h, w = x.shape
    o, cg, kh, kw = kernel.shape
    (sh, sw), (dh, dw) = strides, dilation
    if padding == "same":
        (pt, pb), (pl, pr) = tf_same_pad(h, kh, sh, dh), tf_same_pad(w, kw, sw, dw)
    else:
        pt = pb = pl = pr = 0
    xp = np.zeros((n, c, h + pt + pb, w + pl + pr))
    xp[:, :, pt:pt + h, pl:pl + w] = x
    oh = (xp.shape[2] - (kh - 1) * dh - 1) // sh + 1
    ow = (xp.shape[3] - (kw - 1) * dw - 1) // sw + 1
    og = o // groups
    y = np.zeros((n, o, oh, ow))
    for b in range(n):
        for f in range(o):
            g = f // og
            for i in range(oh):
                for j in range(ow):
                    acc = 0.0 if bias is None else bias[f]
                    for ci in range(cg):
                        for a in range(kh):
                            for bb in range(kw):
                                acc += xp[b, g * cg + ci, i * sh + a * dh, j * sw + bb * dw] * kernel[f, ci, a, bb]
                    y[b, f, i, j] = acc
    return y


CONV_CASES = [
    # id, input shape (N, C, H, W), attributes
    ("valid_3x3", (2, 3, 6, 5), dict(filters=4, kernel_size=3)),
    ("valid_rect_k_stride2", (1, 2, 7, 8), dict(filters=3, kernel_size=[2, 3], strides=2)),
    ("same_3x3", (1, 2, 5, 6), dict(filters=2, kernel_size=3, padding="same")),
    ("same_stride2_even", (1, 2, 6, 8), dict(filters=2, kernel_size=3, strides=2, padding="same")),
    ("same_stride2_odd", (1, 2, 7, 9), dict(filters=2, kernel_size=3, strides=2, padding="same")),
    ("same_even_kernel", (1, 2, 5, 5), dict(filters=2, kernel_size=[2, 4], padding="same")),
    ("dilated_valid", (1, 2, 9, 8), dict(filters=2, kernel_size=3, dilation=2)),
    ("dilated_same", (1, 2, 7, 6), dict(filters=2, kernel_size=3, dilation=[2, 3], padding="same")),
    ("grouped", (2, 4, 5, 5), dict(filters=6, kernel_size=3, groups=2, use_bias=False)),
    ("depthwise_same_s2", (1, 3, 7, 6), dict(filters=3, kernel_size=3, groups=3, strides=2, padding="same")),
    ("depthwise_multiplier", (1, 2, 5, 5), dict(filters=4, kernel_size=2, groups=2)),
    ("pointwise", (2, 5, 3, 4), dict(filters=3, kernel_size=1)),
]


@covers("conv2d")
@pytest.mark.parametrize("in_shape,attrs", [c[1:] for c in CONV_CASES], ids=[c[0] for c in CONV_CASES])
def test_conv2d_matches_naive_loops(in_shape, attrs):
    a = attrs_for("conv2d", [in_shape], **attrs)
    r = rng(1)
    x = r.normal(size=in_shape)
    kh, kw = a["kernel_size"]
    p = {"kernel": r.normal(size=(a["filters"], in_shape[1] // a["groups"], kh, kw))}
    if a["use_bias"]:
        p["bias"] = r.normal(size=a["filters"])
    y = run_op("conv2d", [x], p, a)
    want = naive_conv2d(x, p["kernel"], p.get("bias"), a["strides"], a["dilation"], a["padding"], a["groups"])
    assert y.shape == want.shape
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)


@covers("conv2d")
def test_conv2d_valid_matches_scipy_correlate2d():
    r = rng(2)
    x = r.normal(size=(2, 3, 6, 7))
    k = r.normal(size=(4, 3, 3, 2))
    b = r.normal(size=4)
    y = run_op("conv2d", [x], {"kernel": k, "bias": b}, attrs_for("conv2d", [x.shape], filters=4, kernel_size=[3, 2]))
    want = np.zeros((2, 4, 4, 6))
    for n in range(2):
        for o in range(4):
            want[n, o] = b[o] + sum(signal.correlate2d(x[n, c], k[o, c], mode="valid") for c in range(3))
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)


@covers("conv2d")
def test_conv2d_same_stride2_even_size_pads_only_bottom_right():
    # H = W = 4, k = 3, s = 2: out = 2, pad = (2-1)*2 + 3 - 4 = 1 -> top/left 0, bottom/right 1.
    x = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)
    p = {"kernel": np.ones((1, 1, 3, 3)), "bias": np.zeros(1)}
    y = run_op("conv2d", [x], p, attrs_for("conv2d", [x.shape], filters=1, kernel_size=3, strides=2,
                                           padding="same"))
    # rows 0-2 x cols 0-2: 0+1+2+4+5+6+8+9+10 = 45; rows 0-2 x cols 2-3: 2+3+6+7+10+11 = 39
    # rows 2-3 x cols 0-2: 8+9+10+12+13+14 = 66;    rows 2-3 x cols 2-3: 10+11+14+15 = 50
    np.testing.assert_array_equal(y, [[[[45.0, 39.0], [66.0, 50.0]]]])


@covers("conv2d")
def test_conv2d_depthwise_keeps_channels_apart():
    x = np.zeros((1, 3, 3, 3))
    x[0, 1] = 1.0  # only channel 1 is non-zero
    k = np.ones((3, 1, 3, 3))
    y = run_op("conv2d", [x], {"kernel": k}, attrs_for("conv2d", [x.shape], filters=3, kernel_size=3, groups=3,
                                                      use_bias=False))
    np.testing.assert_array_equal(y[0, :, 0, 0], [0.0, 9.0, 0.0])


# ---------------------------------------------------------------- pooling

X33 = np.arange(9, dtype=np.float64).reshape(1, 1, 3, 3)  # [[0 1 2] [3 4 5] [6 7 8]]

POOL_HAND = [
    # id, op, input, attributes, expected (hand-computed)
    ("max_valid_2x2", "max_pool2d", np.arange(16.0).reshape(1, 1, 4, 4), dict(pool_size=2),
     [[5.0, 7.0], [13.0, 15.0]]),
    ("avg_valid_2x2", "avg_pool2d", np.arange(16.0).reshape(1, 1, 4, 4), dict(pool_size=2),
     [[2.5, 4.5], [10.5, 12.5]]),
    ("max_valid_stride1", "max_pool2d", X33, dict(pool_size=2, strides=1), [[4.0, 5.0], [7.0, 8.0]]),
    # same, k=2, s=2 on 3x3: pad 1 at bottom/right only. Windows {0,1,3,4} {2,5} {6,7} {8}.
    ("avg_same_2x2_s2", "avg_pool2d", X33, dict(pool_size=2, padding="same"), [[2.0, 3.5], [6.5, 8.0]]),
    # negative values: padding must be -inf, not 0, or the maxima would be 0.
    ("max_same_2x2_s2_negative", "max_pool2d", -X33 - 1.0, dict(pool_size=2, padding="same"),
     [[-1.0, -3.0], [-7.0, -9.0]]),
    # same, k=3, s=1 on 3x3: pad 1 on every side; the padded positions are not counted in the mean.
    ("avg_same_3x3_s1", "avg_pool2d", X33, dict(pool_size=3, strides=1, padding="same"),
     [[8 / 4, 15 / 6, 12 / 4], [21 / 6, 36 / 9, 27 / 6], [20 / 4, 33 / 6, 24 / 4]]),
    ("max_same_3x3_s1", "max_pool2d", X33, dict(pool_size=3, strides=1, padding="same"),
     [[4.0, 5.0, 5.0], [7.0, 8.0, 8.0], [7.0, 8.0, 8.0]]),
]


@covers("max_pool2d", "avg_pool2d")
@pytest.mark.parametrize("op,x,attrs,want", [c[1:] for c in POOL_HAND], ids=[c[0] for c in POOL_HAND])
def test_pool_hand_computed(op, x, attrs, want):
    y = run_op(op, [x], {}, attrs_for(op, [x.shape], **attrs))
    np.testing.assert_allclose(y[0, 0], want, rtol=1e-15, atol=0)


def naive_pool(x, kind, pool_size, strides, padding):
    n, c, h, w = x.shape
    (kh, kw), (sh, sw) = pool_size, strides
    if padding == "same":
        (pt, _), (pl, _) = tf_same_pad(h, kh, sh, 1), tf_same_pad(w, kw, sw, 1)
        oh, ow = math.ceil(h / sh), math.ceil(w / sw)
    else:
        pt = pl = 0
        oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    y = np.zeros((n, c, oh, ow))
    for b in range(n):
        for ch in range(c):
            for i in range(oh):
                for j in range(ow):
                    vals = [x[b, ch, r, s] for r in range(i * sh - pt, i * sh - pt + kh)
                            for s in range(j * sw - pl, j * sw - pl + kw) if 0 <= r < h and 0 <= s < w]
                    y[b, ch, i, j] = max(vals) if kind == "max" else sum(vals) / len(vals)
    return y


POOL_LOOPS = [
    ("valid_3x3_s2", (2, 2, 7, 8), dict(pool_size=3, strides=2)),
    ("valid_rect", (1, 2, 6, 7), dict(pool_size=[2, 3])),
    ("same_3x3_s2", (2, 2, 7, 7), dict(pool_size=3, strides=2, padding="same")),
    ("same_2x2_even", (1, 2, 6, 8), dict(pool_size=2, padding="same")),
    ("same_rect_s1", (1, 1, 5, 6), dict(pool_size=[3, 2], strides=1, padding="same")),
]


@covers("max_pool2d", "avg_pool2d")
@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("in_shape,attrs", [c[1:] for c in POOL_LOOPS], ids=[c[0] for c in POOL_LOOPS])
def test_pool_matches_naive_loops(kind, in_shape, attrs):
    op = f"{kind}_pool2d"
    a = attrs_for(op, [in_shape], **attrs)
    x = rng(3).normal(size=in_shape)
    y = run_op(op, [x], {}, a)
    np.testing.assert_allclose(y, naive_pool(x, kind, a["pool_size"], a["strides"], a["padding"]), rtol=1e-12,
                               atol=1e-12)


@covers("global_avg_pool")
def test_global_avg_pool():
    x = rng(4).normal(size=(2, 3, 4, 5))
    y = run_op("global_avg_pool", [x], {}, {})
    want = np.array([[sum(x[n, c].ravel()) / 20 for c in range(3)] for n in range(2)])
    np.testing.assert_allclose(y, want, rtol=1e-12)
    hand = run_op("global_avg_pool", [np.arange(8.0).reshape(1, 2, 2, 2)], {}, {})
    np.testing.assert_array_equal(hand, [[1.5, 5.5]])


# ---------------------------------------------------------------- normalisation

@covers("batch_norm")
@pytest.mark.parametrize("in_shape", [(4, 3), (2, 3, 4, 5)], ids=["2d", "4d"])
def test_batch_norm_formula(in_shape):
    r = rng(5)
    x = r.normal(size=in_shape)
    c = in_shape[1]
    p = {"gamma": r.uniform(0.5, 1.5, c), "beta": r.normal(size=c), "moving_mean": r.normal(size=c),
         "moving_var": r.uniform(0.5, 1.5, c)}
    eps = 1e-3
    y = run_op("batch_norm", [x], p, attrs_for("batch_norm", [in_shape], epsilon=eps))
    want = np.empty_like(x)
    for ch in range(c):
        want[:, ch] = (x[:, ch] - p["moving_mean"][ch]) / math.sqrt(p["moving_var"][ch] + eps) * p["gamma"][ch] \
            + p["beta"][ch]
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)


@covers("batch_norm")
def test_batch_norm_hand_computed():
    p = {"gamma": np.array([2.0]), "beta": np.array([1.0]), "moving_mean": np.array([3.0]),
         "moving_var": np.array([4.0 - 1e-5])}
    y = run_op("batch_norm", [np.array([[5.0], [1.0]])], p, attrs_for("batch_norm", [(2, 1)]))
    # (5 - 3) / 2 * 2 + 1 = 3; (1 - 3) / 2 * 2 + 1 = -1
    np.testing.assert_allclose(y, [[3.0], [-1.0]], rtol=1e-12)


@covers("layer_norm")
@pytest.mark.parametrize("in_shape", [(3, 6), (2, 4, 5)], ids=["2d", "3d"])
def test_layer_norm_formula(in_shape):
    r = rng(6)
    x = r.normal(size=in_shape) * 3 + 1
    d = in_shape[-1]
    p = {"gamma": r.uniform(0.5, 1.5, d), "beta": r.normal(size=d)}
    y = run_op("layer_norm", [x], p, attrs_for("layer_norm", [in_shape]))
    flat = x.reshape(-1, d)
    want = np.empty_like(flat)
    for row in range(flat.shape[0]):
        mu = sum(flat[row]) / d
        var = sum((v - mu) ** 2 for v in flat[row]) / d  # biased
        want[row] = [(flat[row, k] - mu) / math.sqrt(var + 1e-5) * p["gamma"][k] + p["beta"][k] for k in range(d)]
    np.testing.assert_allclose(y, want.reshape(in_shape), rtol=1e-12, atol=1e-12)


@covers("layer_norm")
def test_layer_norm_hand_computed():
    # x = [1, 3]: mean 2, biased var 1 -> [-1, 1] / sqrt(1 + eps)
    y = run_op("layer_norm", [np.array([[1.0, 3.0]])], {"gamma": np.ones(2), "beta": np.zeros(2)},
               attrs_for("layer_norm", [(1, 2)]))
    np.testing.assert_allclose(y, [[-1 / math.sqrt(1 + 1e-5), 1 / math.sqrt(1 + 1e-5)]], rtol=1e-14)


# ---------------------------------------------------------------- element-wise

@covers("relu")
def test_relu():
    y = run_op("relu", [np.array([[-2.0, -0.0, 0.0, 0.5, 3.0]])], {}, {})
    np.testing.assert_array_equal(y, [[0.0, 0.0, 0.0, 0.5, 3.0]])


GELU_KNOWN = [(0.0, 0.0), (1.0, 0.8413447460685429), (-1.0, -0.15865525393145707), (2.0, 1.9544997361036416),
              (-3.0, -0.00404969409489028)]


@covers("gelu")
@pytest.mark.parametrize("x,want", GELU_KNOWN, ids=[f"gelu({x:g})" for x, _ in GELU_KNOWN])
def test_gelu_known_values(x, want):
    y = run_op("gelu", [np.array([[x]])], {}, {})
    np.testing.assert_allclose(y, [[want]], rtol=1e-14, atol=1e-16)


@covers("gelu")
def test_gelu_matches_scipy_erf_not_tanh_approximation():
    x = np.linspace(-6, 6, 121).reshape(11, 11)
    y = run_op("gelu", [x], {}, {})
    np.testing.assert_allclose(y, 0.5 * x * (1 + special.erf(x / np.sqrt(2))), rtol=1e-14, atol=1e-15)
    approx = 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))
    assert np.abs(y - approx).max() > 1e-5  # the exact form, not the tanh approximation


@covers("sigmoid")
def test_sigmoid():
    x = np.array([[0.0, 1.0, -1.0, 30.0, -30.0]])
    y = run_op("sigmoid", [x], {}, {})
    np.testing.assert_allclose(y, [[0.5, 0.7310585786300049, 0.2689414213699951, 1 / (1 + math.exp(-30)),
                                    1 / (1 + math.exp(30))]], rtol=1e-14)
    np.testing.assert_allclose(y, special.expit(x), rtol=1e-14)


@covers("tanh")
def test_tanh():
    x = np.array([[0.0, 0.5, -2.0, 20.0]])
    y = run_op("tanh", [x], {}, {})
    np.testing.assert_allclose(y, [[0.0, 0.46211715726000974, -0.9640275800758169, 1.0]], rtol=1e-14)
    np.testing.assert_allclose(y, [[(math.exp(2 * v) - 1) / (math.exp(2 * v) + 1) for v in x[0]]], rtol=1e-13)


@covers("softmax")
@pytest.mark.parametrize("axis", [-1, 1], ids=["axis_last", "axis_1"])
def test_softmax_rows_sum_to_one_and_shift_invariant(axis):
    x = rng(7).normal(size=(3, 4, 5)) * 10
    a = attrs_for("softmax", [x.shape], axis=axis)
    y = run_op("softmax", [x], {}, a)
    np.testing.assert_allclose(y.sum(axis=axis), 1.0, rtol=1e-14)
    assert (y > 0).all()
    np.testing.assert_allclose(run_op("softmax", [x + 1000.0], {}, a), y, rtol=1e-12)  # stable: no overflow
    e = np.exp(x)
    np.testing.assert_allclose(y, e / e.sum(axis=axis, keepdims=True), rtol=1e-12)


@covers("softmax")
def test_softmax_known_values():
    y = run_op("softmax", [np.array([[0.0, 0.0], [0.0, math.log(3.0)]])], {}, {"axis": -1})
    np.testing.assert_allclose(y, [[0.5, 0.5], [0.25, 0.75]], rtol=1e-15)


BINARY = [
    ("same_shape", (2, 3), (2, 3)),
    ("row_broadcast", (2, 3, 4), (1, 1, 4)),
    ("col_broadcast", (2, 3, 4), (2, 3, 1)),
    ("both_broadcast", (2, 1, 4), (2, 3, 1)),
]


@covers("add", "multiply")
@pytest.mark.parametrize("op,fn", [("add", lambda a, b: a + b), ("multiply", lambda a, b: a * b)],
                         ids=["add", "multiply"])
@pytest.mark.parametrize("sa,sb", [c[1:] for c in BINARY], ids=[c[0] for c in BINARY])
def test_binary_broadcasting(op, fn, sa, sb):
    r = rng(8)
    a, b = r.normal(size=sa), r.normal(size=sb)
    y = run_op(op, [a, b], {}, {})
    out_shape = tuple(max(x, z) for x, z in zip(sa, sb))
    assert y.shape == out_shape
    for idx in np.ndindex(*out_shape):
        ia = tuple(i if d > 1 else 0 for i, d in zip(idx, sa))
        ib = tuple(i if d > 1 else 0 for i, d in zip(idx, sb))
        assert y[idx] == fn(a[ia], b[ib])


@covers("matmul")
@pytest.mark.parametrize("sa,sb,transpose_b", [((2, 3, 4), (2, 4, 5), False), ((2, 3, 4), (2, 5, 4), True),
                                               ((2, 2, 3, 4), (2, 1, 4, 2), False)],
                         ids=["batched", "transpose_b", "broadcast_batch"])
def test_matmul_matches_loops(sa, sb, transpose_b):
    r = rng(9)
    a, b = r.normal(size=sa), r.normal(size=sb)
    y = run_op("matmul", [a, b], {}, attrs_for("matmul", [sa, sb], transpose_b=transpose_b))
    bt = np.swapaxes(b, -1, -2) if transpose_b else b
    m, k, pcols = sa[-2], sa[-1], bt.shape[-1]
    batch = np.broadcast_shapes(sa[:-2], bt.shape[:-2])
    want = np.zeros(batch + (m, pcols))
    for bi in np.ndindex(*batch):
        ai = tuple(i if d > 1 else 0 for i, d in zip(bi, sa[:-2]))
        bj = tuple(i if d > 1 else 0 for i, d in zip(bi, bt.shape[:-2]))
        for i in range(m):
            for j in range(pcols):
                want[bi + (i, j)] = sum(a[ai + (i, q)] * bt[bj + (q, j)] for q in range(k))
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)


@covers("matmul")
def test_matmul_transpose_b_hand_computed():
    a = np.array([[[1.0, 2.0]]])        # (1, 1, 2)
    b = np.array([[[3.0, 4.0], [5.0, 6.0]]])  # rows are the columns of b^T
    y = run_op("matmul", [a, b], {}, {"transpose_b": True})
    np.testing.assert_array_equal(y, [[[11.0, 17.0]]])


# ---------------------------------------------------------------- layout ops

@covers("reshape")
@pytest.mark.parametrize("shape,want_shape", [([3, -1], (2, 3, 8)), ([24], (2, 24)), ([2, 3, 4], (2, 2, 3, 4))],
                         ids=["infer", "flat", "rank3"])
def test_reshape_row_major(shape, want_shape):
    x = np.arange(48.0).reshape(2, 4, 6)
    y = run_op("reshape", [x], {}, attrs_for("reshape", [x.shape], shape=shape))
    assert y.shape == want_shape
    np.testing.assert_array_equal(y.ravel(), x.ravel())  # row-major order, batch kept


@covers("flatten")
def test_flatten_nchw_order():
    x = np.arange(24.0).reshape(2, 3, 2, 2)
    y = run_op("flatten", [x], {}, {})
    assert y.shape == (2, 12)
    # canonical NCHW order: channel-major, so element [n, c, h, w] lands at c*4 + h*2 + w
    assert y[1, 1 * 4 + 1 * 2 + 0] == x[1, 1, 1, 0]
    np.testing.assert_array_equal(y[0], np.arange(12.0))


@covers("transpose")
def test_transpose():
    x = rng(10).normal(size=(2, 3, 4, 5))
    y = run_op("transpose", [x], {}, attrs_for("transpose", [x.shape], perm=[0, 2, 3, 1]))
    assert y.shape == (2, 4, 5, 3)
    for idx in [(0, 0, 0, 0), (1, 2, 3, 4), (1, 0, 2, 1)]:
        n, c, h, w = idx
        assert y[n, h, w, c] == x[idx]


@covers("concat")
@pytest.mark.parametrize("axis", [1, -1], ids=["axis1", "axis_last"])
def test_concat(axis):
    a, b, c = np.ones((2, 2, 3)), np.zeros((2, 2, 3)), np.full((2, 2, 3), 2.0)
    if axis == -1:
        b, c = np.zeros((2, 2, 1)), np.full((2, 2, 2), 2.0)
    y = run_op("concat", [a, b, c], {}, attrs_for("concat", [a.shape, b.shape, c.shape], axis=axis))
    if axis == 1:
        assert y.shape == (2, 6, 3)
        np.testing.assert_array_equal(y[:, :, 0], [[1, 1, 0, 0, 2, 2]] * 2)
    else:
        assert y.shape == (2, 2, 6)
        np.testing.assert_array_equal(y[0, 0], [1, 1, 1, 0, 2, 2])


@covers("mean")
@pytest.mark.parametrize("axis,keepdims,want", [
    (1, False, [[2.0, 3.0], [8.0, 9.0]]),
    ([1, 2], True, [[[2.5]], [[8.5]]]),
    (-1, False, [[0.5, 2.5, 4.5], [6.5, 8.5, 10.5]]),
], ids=["axis1", "axes12_keepdims", "axis_last"])
def test_mean(axis, keepdims, want):
    x = np.arange(12.0).reshape(2, 3, 2)
    y = run_op("mean", [x], {}, attrs_for("mean", [x.shape], axis=axis, keepdims=keepdims))
    np.testing.assert_allclose(y, want, rtol=1e-15)


# ---------------------------------------------------------------- embedding

@covers("embedding")
@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_embedding_gather(dtype):
    table = rng(11).normal(size=(5, 3))
    ids = np.array([[0, 4, 4], [2, 1, 0]], dtype=dtype)
    y = run_op("embedding", [ids], {"table": table}, {"vocab_size": 5, "dim": 3})
    assert y.shape == (2, 3, 3)
    for n in range(2):
        for t in range(3):
            np.testing.assert_array_equal(y[n, t], table[ids[n, t]])


# ---------------------------------------------------------------- attention

def attention_params(d, seed=12):
    r = rng(seed)
    p = {w: r.normal(size=(d, d)) / math.sqrt(d) for w in ("wq", "wk", "wv", "wo")}
    p.update({b: r.normal(size=d) * 0.1 for b in ("bq", "bk", "bv", "bo")})
    return p


def naive_attention(x, p, num_heads, causal):
    n, l, d = x.shape
    hd = d // num_heads
    out = np.zeros((n, l, d))
    for b in range(n):
        q = x[b] @ p["wq"] + p["bq"]
        k = x[b] @ p["wk"] + p["bk"]
        v = x[b] @ p["wv"] + p["bv"]
        merged = np.zeros((l, d))
        for h in range(num_heads):
            cols = slice(h * hd, (h + 1) * hd)
            for i in range(l):
                visible = range(i + 1) if causal else range(l)
                scores = [float(np.dot(q[i, cols], k[j, cols])) / math.sqrt(hd) for j in visible]
                mx = max(scores)
                w = [math.exp(s - mx) for s in scores]
                tot = sum(w)
                merged[i, cols] = sum(wj / tot * v[j, cols] for wj, j in zip(w, visible))
        out[b] = merged @ p["wo"] + p["bo"]
    return out


@covers("attention")
@pytest.mark.parametrize("num_heads", [1, 2, 4], ids=lambda h: f"heads{h}")
@pytest.mark.parametrize("causal", [False, True], ids=["bidirectional", "causal"])
def test_attention_matches_per_head_loops(num_heads, causal):
    x = rng(13).normal(size=(2, 5, 8))
    p = attention_params(8)
    y = run_op("attention", [x], p, attrs_for("attention", [x.shape], num_heads=num_heads, causal=causal))
    np.testing.assert_allclose(y, naive_attention(x, p, num_heads, causal), rtol=1e-11, atol=1e-12)


@covers("attention")
@pytest.mark.parametrize("causal", [False, True], ids=["bidirectional", "causal"])
def test_attention_causal_position0_depends_only_on_token0(causal):
    x = rng(14).normal(size=(1, 4, 6))
    p = attention_params(6)
    a = attrs_for("attention", [x.shape], num_heads=2, causal=causal)
    y = run_op("attention", [x], p, a)
    x2 = x.copy()
    x2[:, 1:] += rng(15).normal(size=(1, 3, 6))  # perturb every later token
    y2 = run_op("attention", [x2], p, a)
    if causal:
        np.testing.assert_array_equal(y2[:, 0], y[:, 0])
        # position 1 sees token 1, which changed
        assert np.abs(y2[:, 1] - y[:, 1]).max() > 1e-3
    else:
        assert np.abs(y2[:, 0] - y[:, 0]).max() > 1e-3


@covers("attention")
def test_attention_single_token_is_value_projection():
    # L = 1: softmax over one score is 1, so out = (x wv + bv) wo + bo whatever q, k are.
    x = rng(16).normal(size=(2, 1, 4))
    p = attention_params(4)
    y = run_op("attention", [x], p, {"num_heads": 2, "causal": False})
    np.testing.assert_allclose(y, (x @ p["wv"] + p["bv"]) @ p["wo"] + p["bo"], rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------- lstm

def sig(v):
    return 1.0 / (1.0 + math.exp(-v))


def naive_lstm(x, p, units):
    """Scalar loops; gate blocks i, f, g, o along the 4U axis."""
    n, t, f = x.shape
    hs = np.zeros((n, t, units))
    for b in range(n):
        h, c = [0.0] * units, [0.0] * units
        for s in range(t):
            z = [p["bias"][j] + sum(x[b, s, q] * p["kernel"][q, j] for q in range(f))
                 + sum(h[q] * p["recurrent_kernel"][q, j] for q in range(units)) for j in range(4 * units)]
            new_h, new_c = [], []
            for u in range(units):
                ig, fg = sig(z[u]), sig(z[units + u])
                gg, og = math.tanh(z[2 * units + u]), sig(z[3 * units + u])
                cu = fg * c[u] + ig * gg
                new_c.append(cu)
                new_h.append(og * math.tanh(cu))
            h, c = new_h, new_c
            hs[b, s] = h
    return hs


@covers("lstm")
@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "sequence"])
def test_lstm_matches_step_by_step_cell(return_sequences):
    r = rng(17)
    n, t, f, u = 2, 5, 3, 4
    x = r.normal(size=(n, t, f))
    p = {"kernel": r.normal(size=(f, 4 * u)) * 0.5, "recurrent_kernel": r.normal(size=(u, 4 * u)) * 0.5,
         "bias": r.normal(size=4 * u) * 0.5}
    y = run_op("lstm", [x], p, attrs_for("lstm", [x.shape], units=u, return_sequences=return_sequences))
    want = naive_lstm(x, p, u)
    np.testing.assert_allclose(y, want if return_sequences else want[:, -1], rtol=1e-12, atol=1e-14)


@covers("lstm")
def test_lstm_one_step_one_unit_hand_computed():
    # x = 1, h0 = c0 = 0, recurrent kernel unused at step 1, zero bias. Gate pre-activations:
    # i = 0 -> sigma = 0.5; f = 5 (irrelevant as c0 = 0, but wrong if swapped with i);
    # g = ln(3)/2 -> tanh = (3-1)/(3+1) = 0.5; o = 0 -> sigma = 0.5.
    # c = 0.5 * 0.5 = 0.25; h = 0.5 * tanh(0.25) = 0.12245933120185457
    p = {"kernel": np.array([[0.0, 5.0, math.log(3.0) / 2, 0.0]]), "recurrent_kernel": np.full((1, 4), 7.0),
         "bias": np.zeros(4)}
    y = run_op("lstm", [np.ones((1, 1, 1))], p, {"units": 1, "return_sequences": False})
    np.testing.assert_allclose(y, [[0.12245933120185457]], rtol=1e-14)


@covers("lstm")
def test_lstm_two_steps_hand_computed_forget_gate():
    # Step 1 as above (c1 = 0.25, h1 = 0.5 tanh(0.25)); step 2 with x = 0 and recurrent kernel 0:
    # z = bias = 0 for every gate -> i = f = o = 0.5, g = 0 -> c2 = 0.5 * 0.25 = 0.125, h2 = 0.5 tanh(0.125).
    p = {"kernel": np.array([[0.0, 5.0, math.log(3.0) / 2, 0.0]]), "recurrent_kernel": np.zeros((1, 4)),
         "bias": np.zeros(4)}
    x = np.array([[[1.0], [0.0]]])
    y = run_op("lstm", [x], p, {"units": 1, "return_sequences": True})
    np.testing.assert_allclose(y, [[[0.5 * math.tanh(0.25)], [0.5 * math.tanh(0.125)]]], rtol=1e-14)


# ---------------------------------------------------------------- coverage and the whole graph

def test_every_op_has_a_reference_test():
    for module in MODULES:
        importlib.import_module(module)
    assert COVERED == set(OPS)
    assert set(OP_FUNCS) == set(OPS)


def test_reference_runs_a_graph_in_order():
    case = next(c for c in CASES if c["name"] == "residual_dag")
    wl = parse_workload(case, "<residual_dag>")
    w = init_weights(wl)
    xs = make_inputs(wl, wl.param_grid()[0])
    y, h = reference(wl, w, xs)
    x = xs["x"].astype(np.float64)
    h_want = x @ w["h"]["kernel"] + w["h"]["bias"]
    s = x + np.maximum(h_want, 0)
    mu, var = s.mean(-1, keepdims=True), s.var(-1, keepdims=True)
    y_want = (s - mu) / np.sqrt(var + 1e-5) * w["y"]["gamma"] + w["y"]["beta"]
    np.testing.assert_allclose(h, h_want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(y, y_want, rtol=1e-12, atol=1e-12)
    assert y.dtype == h.dtype == np.float64


# ---------------------------------------------------------------- weights and inputs

WORKLOADS = op_workloads()
WL_IDS = [name for name, _ in WORKLOADS]
WLS = [wl for _, wl in WORKLOADS]


@pytest.mark.parametrize("wl", WLS, ids=WL_IDS)
def test_weights_and_inputs_are_deterministic(wl):
    params = wl.param_grid()[0]
    w1, w2 = init_weights(wl, params), init_weights(wl, params)
    assert w1.keys() == w2.keys()
    for node in w1:
        assert w1[node].keys() == w2[node].keys()
        for pname in w1[node]:
            np.testing.assert_array_equal(w1[node][pname], w2[node][pname])
    i1, i2 = make_inputs(wl, params), make_inputs(wl, params)
    for name in i1:
        assert i1[name].dtype == np.dtype(wl.inputs[[s.name for s in wl.inputs].index(name)].dtype)
        np.testing.assert_array_equal(i1[name], i2[name])


def _reseeded(case, seed):
    return parse_workload(dict(case, seed=seed), "<reseeded>")


@pytest.mark.parametrize("case", [c for c in CASES if c["name"] in ("dense", "conv_valid", "lstm_last", "embedding",
                                                                   "attention", "batch_norm_4d")],
                         ids=lambda c: c["name"])
def test_different_seed_gives_different_weights_and_inputs(case):
    a, b = _reseeded(case, 0), _reseeded(case, 1)
    params = a.param_grid()[0]
    wa, wb = init_weights(a, params), init_weights(b, params)
    for node in wa:
        for pname in wa[node]:
            assert not np.array_equal(wa[node][pname], wb[node][pname]), f"{node}/{pname}"
    ia, ib = make_inputs(a, params), make_inputs(b, params)
    for name in ia:
        assert not np.array_equal(ia[name], ib[name]), name


def test_adding_a_node_keeps_other_weights():
    base = {"name": "t", "inputs": [{"name": "x", "shape": ["batch", 6]}], "sweep": {"batch": [2]},
            "graph": [{"name": "a", "op": "dense", "input": "x", "units": 4},
                      {"name": "b", "op": "dense", "input": "a", "units": 3}],
            "outputs": ["b"]}
    grown = dict(base, graph=[{"name": "pre", "op": "dense", "input": "x", "units": 6}, *base["graph"],
                              {"name": "c", "op": "layer_norm", "input": "b"}], outputs=["c"])
    w1 = init_weights(parse_workload(base, "<base>"))
    w2 = init_weights(parse_workload(grown, "<grown>"))
    assert set(w2) == {"pre", "a", "b", "c"}
    for node in ("a", "b"):
        for pname in w1[node]:
            np.testing.assert_array_equal(w1[node][pname], w2[node][pname])
    i1 = make_inputs(parse_workload(base, "<base>"), {"batch": 2})
    i2 = make_inputs(parse_workload(grown, "<grown>"), {"batch": 2})
    np.testing.assert_array_equal(i1["x"], i2["x"])


def test_same_shaped_nodes_get_different_weights():
    # The generator is keyed by node name as well as parameter name: two identical layers must differ.
    data = {"name": "t", "inputs": [{"name": "x", "shape": ["batch", 4]}], "sweep": {"batch": [2]},
            "graph": [{"name": "a", "op": "dense", "input": "x", "units": 4},
                      {"name": "b", "op": "dense", "input": "a", "units": 4}],
            "outputs": ["b"]}
    w = init_weights(parse_workload(data, "<twins>"))
    assert not np.array_equal(w["a"]["kernel"], w["b"]["kernel"])
    assert not np.array_equal(w["a"]["bias"], w["b"]["bias"])


@pytest.mark.parametrize("wl", WLS, ids=WL_IDS)
def test_no_parameter_is_all_zeros_or_ones(wl):
    for node, params in init_weights(wl).items():
        for pname, arr in params.items():
            assert arr.dtype == np.float64
            assert np.isfinite(arr).all()
            assert not np.all(arr == 0.0), f"{node}/{pname} is all zeros"
            assert not np.all(arr == 1.0), f"{node}/{pname} is all ones"


@pytest.mark.parametrize("wl", WLS, ids=WL_IDS)
def test_parameter_shapes_match_the_op_catalogue(wl):
    shapes = wl.shapes(wl.param_grid()[0])
    w = init_weights(wl)
    for node in wl.nodes:
        want = OPS[node.op].params([shapes[s] for s in node.inputs], dict(node.attrs))
        got = {k: v.shape for k, v in w.get(node.name, {}).items()}
        assert got == want, node.name
