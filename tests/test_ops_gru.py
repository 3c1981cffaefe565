"""The GRU: reference equations by hand, the canonical z, r, n gate order in every framework's
weight mapping, training end to end, and the gate-order trap (``torch:bug-gru-gates``) caught."""
from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from conftest import assert_passes, available, run_cells, skip_if_missing
from refcover import covers
from suite.ops import OPS
from suite.reference import gru
from suite.spec import load_workload
from suite.targets.common.mappings import GRU_GATES
from suite.targets.jax import weights as jax_weights
from suite.targets.keras import weights as keras_weights
from suite.targets.tensorflow import weights as tf_weights
from suite.targets.torch import weights as torch_weights


def _sig(v):
    return 1.0 / (1.0 + np.exp(-v))


def _params(f, u, reset_after, seed=0):
    rng = np.random.default_rng(seed)
    p = {"kernel": rng.normal(size=(f, 3 * u)), "recurrent_kernel": rng.normal(size=(u, 3 * u)),
         "bias": rng.normal(size=3 * u)}
    if reset_after:
        p["recurrent_bias"] = rng.normal(size=3 * u)
    return p


# ---- reference ------------------------------------------------------------------------------------

@covers("gru")
@pytest.mark.parametrize("reset_after", [True, False])
def test_reference_one_unit_by_hand(reset_after):
    """Scalar GRU over two steps, written out with the gate blocks named: z (update), r (reset), n (new)."""
    wz, wr, wn, uz, ur, un = 0.5, -0.7, 1.1, 0.3, 0.9, -1.3
    bz, br, bn, rz, rr, rn = 0.1, -0.2, 0.05, 0.2, 0.3, -0.4
    p = {"kernel": np.array([[wz, wr, wn]]), "recurrent_kernel": np.array([[uz, ur, un]]),
         "bias": np.array([bz, br, bn])}
    if reset_after:
        p["recurrent_bias"] = np.array([rz, rr, rn])
    else:
        rz = rr = 0.0
    xs = [0.8, -1.5]
    h, want = 0.0, []
    for x in xs:
        z = _sig(x * wz + bz + h * uz + rz)
        r = _sig(x * wr + br + h * ur + rr)
        n = np.tanh(x * wn + bn + r * (h * un + rn)) if reset_after else np.tanh(x * wn + bn + (r * h) * un)
        h = (1 - z) * n + z * h
        want.append(h)
    x = np.array(xs).reshape(1, 2, 1)
    np.testing.assert_allclose(gru(x, p, 1, True, reset_after)[0, :, 0], want, rtol=1e-12)
    np.testing.assert_allclose(gru(x, p, 1, False, reset_after)[0, 0], want[-1], rtol=1e-12)


def test_reference_first_block_is_the_update_gate():
    """A large update-gate bias (block 0) keeps h at its zero start; the same bias in block 1 does not."""
    p = _params(3, 4, True)
    x = np.random.default_rng(1).normal(size=(2, 5, 3))
    for block, stays_zero in ((0, True), (1, False)):
        q = {k: v.copy() for k, v in p.items()}
        q["bias"][block * 4:(block + 1) * 4] = 50.0
        h = gru(x, q, 4, False, True)
        assert (np.abs(h).max() < 1e-12) == stays_zero


def test_reset_after_changes_the_result_and_the_params():
    p = _params(3, 4, True)
    x = np.random.default_rng(2).normal(size=(2, 5, 3))
    q = dict(p, recurrent_bias=np.zeros(12))
    # With a zero recurrent bias the two forms differ only in where r multiplies: before or after U_n.
    assert np.abs(gru(x, q, 4, True, True) - gru(x, q, 4, True, False)).max() > 1e-3
    attrs = {"units": 4, "return_sequences": False, "reset_after": False}
    assert set(OPS["gru"].params([(2, 5, 3)], attrs)) == {"kernel", "recurrent_kernel", "bias"}
    assert OPS["gru"].params([(2, 5, 3)], dict(attrs, reset_after=True))["recurrent_bias"] == (12,)


# ---- weight mappings (NumPy only) -----------------------------------------------------------------

@pytest.mark.parametrize("reset_after", [True, False])
def test_torch_mapping_reorders_z_r_n_into_r_z_n(reset_after):
    u = 4
    p = _params(3, u, reset_after)
    w = torch_weights.gru(p, {"units": u, "reset_after": reset_after})
    blocks = {g: k for k, g in enumerate(GRU_GATES)}

    def canon(a, gate):  # rows of torch's (3U, ...) weight for a gate, from the canonical columns
        return a[..., blocks[gate] * u:(blocks[gate] + 1) * u]

    for k, torch_gate in enumerate(("r", "z", "n")):
        rows = slice(k * u, (k + 1) * u)
        np.testing.assert_array_equal(w["weight_ih_l0"][rows], np.float32(canon(p["kernel"], torch_gate).T))
        np.testing.assert_array_equal(w["weight_hh_l0"][rows], np.float32(canon(p["recurrent_kernel"], torch_gate).T))
        np.testing.assert_array_equal(w["bias_ih_l0"][rows], np.float32(canon(p["bias"], torch_gate)))
        if reset_after:
            np.testing.assert_array_equal(w["bias_hh_l0"][rows], np.float32(canon(p["recurrent_bias"], torch_gate)))
    assert ("bias_hh_l0" in w) == reset_after
    assert all(v.dtype == np.float32 for v in w.values())


@pytest.mark.parametrize("reset_after", [True, False])
def test_keras_tf_jax_mappings_keep_z_r_n(reset_after):
    u = 4
    p = _params(3, u, reset_after)
    a = {"units": u, "reset_after": reset_after}
    kernel, rec, bias = keras_weights.gru(p, a)
    np.testing.assert_array_equal(kernel, np.float32(p["kernel"]))
    np.testing.assert_array_equal(rec, np.float32(p["recurrent_kernel"]))
    want_bias = np.stack([p["bias"], p["recurrent_bias"]]) if reset_after else p["bias"]
    np.testing.assert_array_equal(bias, np.float32(want_bias))
    assert tf_weights.WEIGHTS["gru"](p, a).keys() == p.keys()
    jw = jax_weights.gru(p, a)
    for k, gate in enumerate(GRU_GATES):
        np.testing.assert_array_equal(jw[f"i{gate}"], np.float32(p["kernel"][:, k * u:(k + 1) * u]))
        np.testing.assert_array_equal(jw[f"h{gate}"], np.float32(p["recurrent_kernel"][:, k * u:(k + 1) * u]))
        np.testing.assert_array_equal(jw[f"bi{gate}"], np.float32(p["bias"][k * u:(k + 1) * u]))
    assert (f"bh{GRU_GATES[0]}" in jw) == reset_after


# ---- end to end: native targets in train mode, and the trap -------------------------------------

def _classifier_data(reset_after):
    return {
        "name": f"gru_train_{'after' if reset_after else 'before'}",
        "inputs": [{"name": "x", "shape": ["batch", 6, 3]}],
        "sweep": {"batch": [3]},
        "graph": [{"name": "gru1", "op": "gru", "input": "x", "units": 4, "return_sequences": True,
                   "reset_after": reset_after},
                  {"name": "gru2", "op": "gru", "input": "gru1", "units": 5, "reset_after": reset_after},
                  {"name": "logits", "op": "dense", "input": "gru2", "units": 3}],
        "outputs": ["logits"],
        "classes_axis": -1,
        "train": {"loss": "softmax_cross_entropy",
                  "optimizer": {"kind": "sgd", "learning_rate": 0.1, "momentum": 0.9}},
    }


def _name(reset_after):
    return _classifier_data(reset_after)["name"]


NATIVE = ["torch:eager", "tensorflow:function", "jax:jit", "keras[jax]", "keras[tensorflow]", "keras[torch]"]


@pytest.fixture(scope="module")
def train_records(cpu_profile, tmp_path_factory):
    d = tmp_path_factory.mktemp("gru")
    wls = []
    for reset_after in (True, False):  # written out, so workers load them like any workload
        path = d / f"{_name(reset_after)}.yaml"
        path.write_text(yaml.safe_dump(_classifier_data(reset_after), sort_keys=False))
        wls.append(load_workload(path))
    targets = [t for t in NATIVE + ["torch:bug-gru-gates"] if available(t)]
    recs = {}
    for mode in ("inference", "train"):
        for (w, p, t), r in run_cells(wls, targets, cpu_profile, mode=mode).items():
            recs[(w, t, mode)] = r
    return recs


@pytest.mark.parametrize("target", NATIVE)
@pytest.mark.parametrize("reset_after", [True, False], ids=["reset_after", "reset_before"])
@pytest.mark.parametrize("mode", ["inference", "train"])
def test_native_gru_passes(train_records, target, reset_after, mode):
    skip_if_missing(target)
    rec = train_records[(_name(reset_after), target, mode)]
    assert_passes(rec, mode)


@pytest.mark.parametrize("reset_after", [True, False], ids=["reset_after", "reset_before"])
def test_gru_gate_order_trap_is_caught(train_records, reset_after):
    """z, r, n copied into nn.GRU unreordered: a large error in inference, wrong gradients in train mode."""
    skip_if_missing("torch:bug-gru-gates")
    name = _name(reset_after)
    rec = train_records[(name, "torch:bug-gru-gates", "inference")]
    assert rec["status"] == "fail", rec.get("status_reason")
    assert rec["max_abs_err"] > 1e-2 and rec["mismatch_fraction"] > 0.1
    assert "outside rtol" in rec["status_reason"]
    rec = train_records[(name, "torch:bug-gru-gates", "train")]
    assert rec["status"] == "fail", rec.get("status_reason")
    assert rec["grad_cosine"] < 0.99, json.dumps({k: rec.get(k) for k in ("grad_cosine", "status_reason")})
