"""Activations, norms, shape and embedding ops (rms_norm, silu, relu6, hard_sigmoid, hard_swish,
gelu's ``approximate``, slice, pad, position_embedding, class_token, dropout): reference semantics written
out by hand, shape checks, weight layouts, training end to end on every native target, and the GELU
approximation trap (``jax:bug-gelu-tanh``, ``torch:bug-gelu-exact``) caught in inference and train mode."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import yaml

from conftest import assert_passes, available, run_cells, skip_if_missing
from refcover import covers
from suite.ops import OPS, ShapeError
from suite.reference import run_op
from suite.spec import SpecError, load_workload, parse_workload
from suite.targets.jax import weights as jax_weights
from suite.targets.keras import weights as keras_weights
from suite.targets.tensorflow import weights as tf_weights
from suite.targets.torch import weights as torch_weights


def _attrs(op, **given):
    """The op's attributes with defaults filled, as suite.spec leaves them."""
    out = {}
    for a in OPS[op].attrs:
        out[a.name] = a.check(given[a.name]) if a.name in given else a.default
    return out


def _ref(op, x, p=None, **attrs):
    return run_op(op, [np.asarray(x, dtype=np.float64)], p or {}, _attrs(op, **attrs))


# ---- reference semantics ----------------------------------------------------------------------------

@covers("rms_norm")
def test_rms_norm_has_no_mean_and_no_beta():
    x = np.array([[1.0, 2.0, 3.0, 4.0]])
    gamma = np.array([1.0, 2.0, 0.5, 1.0])
    rms = math.sqrt((1 + 4 + 9 + 16) / 4 + 1e-6)
    np.testing.assert_allclose(_ref("rms_norm", x, {"gamma": gamma}), x / rms * gamma, rtol=1e-15)
    assert _attrs("rms_norm")["epsilon"] == 1e-6
    assert set(OPS["rms_norm"].params([(2, 5, 8)], _attrs("rms_norm"))) == {"gamma"}


@covers("hard_sigmoid", "hard_swish")
def test_hard_sigmoid_is_relu6_over_6_not_keras2():
    x = np.array([-4.0, -3.0, -1.5, 0.0, 1.0, 3.0, 5.0])
    want = np.clip(x + 3.0, 0.0, 6.0) / 6.0
    np.testing.assert_allclose(_ref("hard_sigmoid", x), want, rtol=1e-15)
    keras2 = np.clip(0.2 * x + 0.5, 0.0, 1.0)  # Keras 2 / tf.keras' hard_sigmoid: the trap
    assert np.abs(_ref("hard_sigmoid", x) - keras2).max() > 0.05
    np.testing.assert_allclose(_ref("hard_swish", x), x * want, rtol=1e-15)


@covers("silu", "relu6")
def test_silu_and_relu6():
    x = np.array([-7.0, -1.0, 0.0, 2.0, 6.5])
    np.testing.assert_allclose(_ref("silu", x), x / (1.0 + np.exp(-x)), rtol=1e-15)
    np.testing.assert_array_equal(_ref("relu6", x), [0.0, 0.0, 0.0, 2.0, 6.0])


@covers("gelu")
def test_gelu_approximate_forms():
    x = np.array([-3.0, -2.0, -0.5, 0.0, 1.0, 2.7])
    exact = 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))
    tanh = 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))
    np.testing.assert_allclose(_ref("gelu", x), exact, rtol=1e-15)  # default: exact
    np.testing.assert_allclose(_ref("gelu", x, approximate="none"), exact, rtol=1e-15)
    np.testing.assert_allclose(_ref("gelu", x, approximate="tanh"), tanh, rtol=1e-15)
    # the trap cases use |x| of a few units, where the two forms differ far beyond float32 tolerance
    assert np.abs(exact - tanh).max() > 3e-4


@covers("slice")
def test_slice_follows_python_slicing():
    x = np.arange(2 * 10, dtype=np.float64).reshape(2, 10)
    for start, stop, step in ((-7, -1, 2), (1, None, 3), (0, 100, 1), (-100, 3, 2), (8, None, 1)):
        got = _ref("slice", x, axis=-1, start=start, stop=stop, step=step)
        np.testing.assert_array_equal(got, x[:, start:stop:step])
        shape = OPS["slice"].out_shape([x.shape], _attrs("slice", axis=-1, start=start, stop=stop, step=step))
        assert shape == got.shape
    assert _attrs("slice", axis=1) == {"axis": 1, "start": 0, "stop": None, "step": 1}


@pytest.mark.parametrize("attrs,field", [({"axis": 0}, "axis"), ({"axis": -3}, "axis"),
                                         ({"axis": 1, "start": 5}, "start"),
                                         ({"axis": 1, "start": 3, "stop": 2}, "start")])
def test_slice_refuses_the_batch_axis_and_empty_slices(attrs, field):
    with pytest.raises(ShapeError) as e:
        OPS["slice"].out_shape([(2, 5)], _attrs("slice", **attrs))
    assert e.value.field == field


@covers("pad")
def test_pad_constant_and_its_shape_check():
    x = np.ones((1, 2, 3))
    got = _ref("pad", x, pads=[[1, 0], [0, 2]], value=-1.5)
    assert got.shape == (1, 3, 5) == OPS["pad"].out_shape([x.shape], _attrs("pad", pads=[[1, 0], [0, 2]]))
    assert got[0, 0].tolist() == [-1.5] * 5 and got[0, 1].tolist() == [1, 1, 1, -1.5, -1.5]
    with pytest.raises(ShapeError, match="one per non-batch axis"):
        OPS["pad"].out_shape([(1, 2, 3)], _attrs("pad", pads=[[1, 1]]))
    for bad in ([[1, -1]], [[1]], [1, 2], []):
        with pytest.raises(ValueError):
            OPS["pad"].attrs[0].check(bad)


@covers("position_embedding", "class_token")
def test_position_embedding_and_class_token():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 4))
    table, token = rng.normal(size=(3, 4)), rng.normal(size=4)
    np.testing.assert_array_equal(_ref("position_embedding", x, {"table": table}), x + table)
    y = _ref("class_token", x, {"token": token})
    assert y.shape == (2, 4, 4) == OPS["class_token"].out_shape([x.shape], {})
    np.testing.assert_array_equal(y[:, 0], [token, token])
    np.testing.assert_array_equal(y[:, 1:], x)
    assert OPS["position_embedding"].params([x.shape], {}) == {"table": (3, 4)}
    assert OPS["class_token"].params([x.shape], {}) == {"token": (4,)}


@covers("dropout")
def test_dropout_is_identity_and_rate_is_checked():
    x = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(_ref("dropout", x, rate=0.9), x)
    assert _attrs("dropout")["rate"] == 0.5
    for bad in (1.0, -0.1, True):
        with pytest.raises(ValueError):
            OPS["dropout"].attrs[0].check(bad)


def test_bad_attributes_are_one_line_spec_errors():
    base = {"name": "w", "inputs": [{"name": "x", "shape": ["batch", 4]}], "sweep": {"batch": [1]},
            "outputs": ["y"]}
    for node, words in (({"op": "gelu", "approximate": "erf"}, "approximate"),
                        ({"op": "dropout", "rate": 1}, "rate"),
                        ({"op": "slice", "axis": 0}, "axis"),
                        ({"op": "pad", "pads": [[1, 1], [0, 0]]}, "pads")):
        with pytest.raises(SpecError) as e:
            parse_workload(dict(base, graph=[dict(node, name="y", input="x")]), "<w>")
        assert words in str(e.value) and "\n" not in str(e.value)


# ---- weight layouts (NumPy only) ----------------------------------------------------------------------

def test_native_weight_layouts():
    rng = np.random.default_rng(1)
    table, token, gamma = rng.normal(size=(5, 4)), rng.normal(size=4), rng.normal(size=4)
    tw = torch_weights.WEIGHTS
    assert tw["position_embedding"]({"table": table}, {})["pos_embedding"].shape == (1, 5, 4)
    assert tw["class_token"]({"token": token}, {})["class_token"].shape == (1, 1, 4)
    np.testing.assert_array_equal(tw["rms_norm"]({"gamma": gamma}, {})["weight"], np.float32(gamma))
    jw = jax_weights.WEIGHTS
    assert jw["position_embedding"]({"table": table}, {})["pos_embedding"].shape == (1, 5, 4)
    np.testing.assert_array_equal(jw["class_token"]({"token": token}, {})["cls"].ravel(), np.float32(token))
    np.testing.assert_array_equal(jw["rms_norm"]({"gamma": gamma}, {})["scale"], np.float32(gamma))
    kw = keras_weights.WEIGHTS
    assert [a.shape for a in kw["position_embedding"]({"table": table}, {})] == [(5, 4)]
    assert [a.shape for a in kw["class_token"]({"token": token}, {})] == [(1, 1, 4)]
    assert tf_weights.WEIGHTS["class_token"]({"token": token}, {})["token"].shape == (4,)


# ---- end to end: training on every native target, and the GELU trap ------------------------------

NATIVE = ["torch:eager", "tensorflow:function", "jax:jit", "keras[jax]", "keras[tensorflow]", "keras[torch]"]
TRAPS = {"jax:bug-gelu-tanh": "none", "torch:bug-gelu-exact": "tanh"}  # trap target -> the form asked
TRAIN = {"loss": "softmax_cross_entropy", "optimizer": {"kind": "sgd", "learning_rate": 0.1, "momentum": 0.9}}


def _every_op():
    """A small ViT/Llama-ish classifier using every op of this group, with a train section."""
    g = [{"name": "t", "op": "class_token", "input": "x"},
         {"name": "pe", "op": "position_embedding", "input": "t"},
         {"name": "n", "op": "rms_norm", "input": "pe"},
         {"name": "h", "op": "dense", "input": "n", "units": 16},
         {"name": "g", "op": "gelu", "input": "h", "approximate": "tanh"},
         {"name": "s", "op": "slice", "input": "g", "axis": -1, "start": 1, "stop": -1},
         {"name": "a", "op": "silu", "input": "s"},
         {"name": "d", "op": "dropout", "input": "a", "rate": 0.1},
         {"name": "p", "op": "pad", "input": "d", "pads": [[1, 0], [0, 2]], "value": 0.5},
         {"name": "h2", "op": "dense", "input": "p", "units": 8},
         {"name": "hs", "op": "hard_swish", "input": "h2"},
         {"name": "r6", "op": "relu6", "input": "hs"},
         {"name": "hg", "op": "hard_sigmoid", "input": "h2"},
         {"name": "m", "op": "multiply", "inputs": ["r6", "hg"]},
         {"name": "ge", "op": "gelu", "input": "m"},
         {"name": "cls", "op": "slice", "input": "ge", "axis": 1, "start": 0, "stop": 1},
         {"name": "f", "op": "flatten", "input": "cls"},
         {"name": "logits", "op": "dense", "input": "f", "units": 3}]
    return {"name": "act_every_op", "inputs": [{"name": "x", "shape": ["batch", 6, 8],
                                                "distribution": {"kind": "normal", "mean": 0, "std": 2}}],
            "sweep": {"batch": [3]}, "graph": g, "outputs": ["logits"], "classes_axis": -1, "train": TRAIN}


def _gelu_trap(approximate):
    """Inputs near -2, where the two GELUs' slopes differ by ~1 % (values by ~0.2 %): the table's gradient
    and the loss both show the wrong form, not only the forward values."""
    return {"name": f"act_gelu_{approximate}", "sweep": {"batch": [4]}, "classes_axis": -1, "train": TRAIN,
            "inputs": [{"name": "x", "shape": ["batch", 4, 8],
                        "distribution": {"kind": "normal", "mean": -2, "std": 0.5}}],
            "graph": [{"name": "pe", "op": "position_embedding", "input": "x"},
                      {"name": "g", "op": "gelu", "input": "pe", "approximate": approximate},
                      {"name": "logits", "op": "dense", "input": "g", "units": 3}],
            "outputs": ["logits"]}


@pytest.fixture(scope="module")
def records(cpu_profile, tmp_path_factory):
    d = tmp_path_factory.mktemp("act")
    wls = {}
    for data in (_every_op(), _gelu_trap("none"), _gelu_trap("tanh")):
        path = d / f"{data['name']}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        wls[data["name"]] = load_workload(path)
    recs = {}
    for mode in ("inference", "train"):
        native = [t for t in NATIVE if available(t)]
        for (w, _, t), r in run_cells(list(wls.values()), native, cpu_profile, mode=mode).items():
            recs[(w, t, mode)] = r
        for trap, approximate in TRAPS.items():
            if available(trap):
                for (w, _, t), r in run_cells([wls[f"act_gelu_{approximate}"]], [trap], cpu_profile,
                                              mode=mode).items():
                    recs[(w, t, mode)] = r
    return recs


@pytest.mark.parametrize("target", NATIVE)
@pytest.mark.parametrize("workload", ["act_every_op", "act_gelu_none", "act_gelu_tanh"])
@pytest.mark.parametrize("mode", ["inference", "train"])
def test_native_targets_pass(records, target, workload, mode):
    skip_if_missing(target)
    rec = records[(workload, target, mode)]
    assert_passes(rec, mode)


@pytest.mark.parametrize("trap", sorted(TRAPS))
def test_gelu_approximation_trap_is_caught(records, trap):
    """The other GELU form: a large share of outputs outside tolerance, and wrong gradients in train mode."""
    skip_if_missing(trap)
    name = f"act_gelu_{TRAPS[trap]}"
    rec = records[(name, trap, "inference")]
    assert rec["status"] == "fail", rec.get("status_reason")
    assert rec["max_abs_err"] > 5e-5 and rec["mismatch_fraction"] > 0.5, rec["status_reason"]
    assert "outside rtol" in rec["status_reason"]
    rec = records[(name, trap, "train")]
    assert rec["status"] == "fail", json.dumps({k: rec.get(k) for k in ("grad_cosine", "status_reason")})

