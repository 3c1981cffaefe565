"""Attention: grouped-query / multi-query kv heads, optional biases, rotary embeddings.

The reference by hand (per-head loops, rotations written out), the attribute checks, the weight mappings
of every framework (NumPy only), every native target in inference and train mode, and the two traps
(``torch:bug-rope-interleaved``, ``jax:bug-gqa-groups``) caught.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import yaml

from conftest import assert_passes, available, run_cells, skip_if_missing
from refcover import covers
from suite.ops import OPS, Rope, _rope
from suite.reference import apply_rope, attention, softmax
from suite.spec import SpecError, load_workload, parse_workload
from suite.targets.jax import weights as jax_weights
from suite.targets.keras import weights as keras_weights
from suite.targets.tensorflow import weights as tf_weights
from suite.targets.torch import weights as torch_weights


def _params(d, h, hkv, bias=True, seed=0):
    rng = np.random.default_rng(seed)
    hd = d // h
    p = {"wq": rng.normal(size=(d, d)), "wk": rng.normal(size=(d, hkv * hd)), "wv": rng.normal(size=(d, hkv * hd)),
         "wo": rng.normal(size=(d, d))}
    if bias:
        p.update(bq=rng.normal(size=d), bk=rng.normal(size=hkv * hd), bv=rng.normal(size=hkv * hd),
                 bo=rng.normal(size=d))
    return p


def _naive(x, p, h, hkv, causal=False, rope=None):
    """Per example, per query head loops; query head i reads kv head i // (h / hkv)."""
    n, l, d = x.shape
    hd = d // h
    out = np.zeros((n, l, d))
    for b in range(n):
        q, k, v = (x[b] @ p["w" + c] + p.get("b" + c, 0) for c in "qkv")
        ctx = np.zeros((l, d))
        for i in range(h):
            j = i // (h // hkv)
            qi, kj, vj = q[:, i * hd:(i + 1) * hd], k[:, j * hd:(j + 1) * hd], v[:, j * hd:(j + 1) * hd]
            if rope is not None:
                qi, kj = _rotate_by_hand(qi, rope), _rotate_by_hand(kj, rope)
            s = qi @ kj.T / math.sqrt(hd)
            if causal:
                s = np.where(np.tril(np.ones((l, l), bool)), s, -np.inf)
            ctx[:, i * hd:(i + 1) * hd] = softmax(s, None, axis=-1) @ vj
        out[b] = ctx @ p["wo"] + p.get("bo", 0)
    return out


def _rotate_by_hand(t, rope):
    """t (L, hd): pair i turned by pos * base^(-2i/r), one pair at a time."""
    l, hd = t.shape
    r = rope.dims(hd)
    out = t.copy()
    for pos in range(l):
        for i in range(r // 2):
            a, b = (i, i + r // 2) if rope.style == "half" else (2 * i, 2 * i + 1)
            th = pos * rope.base ** (-2 * i / r)
            out[pos, a] = t[pos, a] * math.cos(th) - t[pos, b] * math.sin(th)
            out[pos, b] = t[pos, b] * math.cos(th) + t[pos, a] * math.sin(th)
    return out


# ---- reference ------------------------------------------------------------------------------------

@covers("attention")
@pytest.mark.parametrize("h,hkv", [(4, 4), (4, 2), (4, 1), (6, 3)])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_grouped_heads_match_per_head_loops(h, hkv, causal, bias):
    x = np.random.default_rng(1).normal(size=(2, 5, 12))
    p = _params(12, h, hkv, bias)
    y = attention(x, p, h, causal, num_kv_heads=hkv, use_bias=bias)
    np.testing.assert_allclose(y, _naive(x, p, h, hkv, causal), rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("style", ["half", "interleaved"])
@pytest.mark.parametrize("fraction", [1.0, 0.5, 0.4])
def test_rope_matches_rotations_by_hand(style, fraction):
    rope = Rope(500.0, style, fraction)
    x = np.random.default_rng(2).normal(size=(2, 6, 16))
    p = _params(16, 2, 1)
    y = attention(x, p, 2, True, num_kv_heads=1, rope=rope)
    np.testing.assert_allclose(y, _naive(x, p, 2, 1, True, rope), rtol=1e-10, atol=1e-11)


def test_rope_dims_and_position_zero():
    assert Rope(fraction=0.5).dims(8) == 4 and Rope(fraction=0.4).dims(8) == 2 and Rope(fraction=0.3).dims(8) == 2
    t = np.random.default_rng(3).normal(size=(1, 1, 5, 8))
    for style in ("half", "interleaved"):
        out = apply_rope(t, Rope(style=style, fraction=0.5))
        np.testing.assert_array_equal(out[..., 0, :], t[..., 0, :])  # angle 0 at position 0
        np.testing.assert_array_equal(out[..., 4:], t[..., 4:])  # dims >= r pass through
    # the two conventions really differ (the trap needs them to)
    assert np.abs(apply_rope(t, Rope(style="half")) - apply_rope(t, Rope(style="interleaved"))).max() > 0.1


def test_defaults_keep_todays_params_and_values():
    attrs = {"num_heads": 2, "causal": False}
    old = {"wq": (8, 8), "wk": (8, 8), "wv": (8, 8), "wo": (8, 8), "bq": (8,), "bk": (8,), "bv": (8,), "bo": (8,)}
    full = dict(attrs, num_kv_heads=None, use_bias=True, rope=None)
    assert OPS["attention"].params([(2, 5, 8)], full) == old
    assert list(OPS["attention"].params([(2, 5, 8)], full)) == list(old)  # same order: same seeds, same weights
    shapes = OPS["attention"].params([(2, 5, 8)], dict(full, num_heads=4, num_kv_heads=1, use_bias=False))
    assert shapes == {"wq": (8, 8), "wk": (8, 2), "wv": (8, 2), "wo": (8, 8)}


def _wl_data(**node):
    return {"name": "a", "inputs": [{"name": "x", "shape": ["batch", 6, 16]}], "sweep": {"batch": [2]},
            "graph": [dict({"name": "att", "op": "attention", "input": "x", "num_heads": 4}, **node)],
            "outputs": ["att"]}


def test_rope_attribute_is_normalised():
    wl = parse_workload(_wl_data(rope={"style": "interleaved", "base": 100}), "a.yaml")
    assert wl.nodes[0].attrs["rope"] == Rope(100.0, "interleaved", 1.0)
    assert _rope({"style": "half"}) == Rope()


@pytest.mark.parametrize("node,field,expect", [
    ({"rope": {"base": 100}}, "graph[0].rope", "rope.style 'half' or 'interleaved'"),
    ({"rope": {"style": "neox"}}, "graph[0].rope", "rope.style 'half' or 'interleaved'"),
    ({"rope": {"style": "half", "fraction": 0}}, "graph[0].rope", "rope.fraction a number in (0, 1]"),
    ({"rope": {"style": "half", "scale": 2}}, "graph[0].rope", "expected a mapping with style"),
    ({"rope": {"style": "half", "fraction": 0.1}}, "graph[0].rope", "rotates no pair of dims"),
    ({"num_kv_heads": 3}, "graph[0].num_kv_heads", "does not divide num_heads 4"),
])
def test_bad_attention_attributes_name_the_field(node, field, expect):
    with pytest.raises(SpecError) as info:
        parse_workload(_wl_data(**node), "a.yaml")
    assert f"a.yaml: {field}: " in str(info.value) and expect in str(info.value), str(info.value)


# ---- weight mappings (NumPy only) -----------------------------------------------------------------

@pytest.mark.parametrize("bias", [True, False])
def test_mappings_keep_every_element_once(bias):
    p = _params(16, 4, 2, bias)
    a = {"num_heads": 4, "num_kv_heads": 2, "causal": True, "use_bias": bias, "rope": Rope()}
    kw = keras_weights.attention(p, a)
    assert [w.shape for w in kw] == [s for c, bs in (((16, 4, 4), (4, 4)), ((16, 2, 4), (2, 4)), ((16, 2, 4), (2, 4)),
                                                     ((4, 4, 16), (16,))) for s in ((c, bs) if bias else (c,))]
    np.testing.assert_array_equal(kw[2 if bias else 1][:, 1, :], np.float32(p["wk"][:, 4:8]))  # kv head 1
    jw = jax_weights.attention(p, a)
    assert jw["key_kernel"].shape == (16, 2, 4) and ("key_bias" in jw) == bias
    tw = torch_weights.attention(p, a)
    np.testing.assert_array_equal(tw["k.weight"], np.float32(p["wk"].T))
    assert ("o.bias" in tw) == bias and "in_proj_weight" not in tw
    assert tf_weights.WEIGHTS["attention"](p, a).keys() == p.keys()
    for w in (kw, list(jw.values()), list(tw.values())):
        assert sum(x.size for x in w) == sum(x.size for x in p.values())


def test_plain_attention_keeps_multihead_module_weights():
    p = _params(8, 2, 2)
    tw = torch_weights.attention(p, {"num_heads": 2, "causal": False, "num_kv_heads": None, "use_bias": True,
                                     "rope": None})
    assert set(tw) == {"in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"}


# ---- end to end: native targets in both modes, and the traps --------------------------------------

CASES = {  # name -> attention attributes; each model: attention -> dense head, mean squared error
    "attn_gqa_causal_rope_half": dict(num_heads=4, num_kv_heads=2, causal=True, use_bias=False,
                                      rope={"style": "half"}),
    "attn_mqa_rope_interleaved": dict(num_heads=4, num_kv_heads=1, rope={"style": "interleaved", "base": 100.0}),
    "attn_gqa_rope_half_fraction": dict(num_heads=4, num_kv_heads=2, rope={"style": "half", "fraction": 0.5}),
}
NATIVE = ["torch:eager", "tensorflow:function", "jax:jit", "keras[jax]", "keras[tensorflow]", "keras[torch]"]
TRAPS = {"torch:bug-rope-interleaved": "attn_gqa_causal_rope_half", "jax:bug-gqa-groups": "attn_gqa_causal_rope_half"}


def _data(name):
    return {"name": name, "inputs": [{"name": "x", "shape": ["batch", 6, 16]}], "sweep": {"batch": [3]},
            "graph": [dict({"name": "att", "op": "attention", "input": "x"}, **CASES[name]),
                      {"name": "y", "op": "dense", "input": "att", "units": 5}],
            "outputs": ["y"], "train": {"loss": "mean_squared_error",
                                        "optimizer": {"kind": "sgd", "learning_rate": 0.05, "momentum": 0.9}}}


@pytest.fixture(scope="module")
def records(cpu_profile, tmp_path_factory):
    d = tmp_path_factory.mktemp("attn")
    wls = []
    for name in CASES:
        path = d / f"{name}.yaml"
        path.write_text(yaml.safe_dump(_data(name), sort_keys=False))
        wls.append(load_workload(path))
    targets = [t for t in NATIVE + list(TRAPS) if available(t)]
    recs = {}
    for mode in ("inference", "train"):
        for (w, _, t), r in run_cells(wls, targets, cpu_profile, mode=mode).items():
            recs[(w, t, mode)] = r
    return recs


@pytest.mark.parametrize("target", NATIVE)
@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("mode", ["inference", "train"])
def test_native_attention_passes(records, target, name, mode):
    skip_if_missing(target)
    rec = records[(name, target, mode)]
    assert_passes(rec, mode)


@pytest.mark.parametrize("target", list(TRAPS))
def test_attention_trap_is_caught(records, target):
    """Interleaved rope where half is asked; kv heads tiled (h % Hkv) where contiguous groups are asked."""
    skip_if_missing(target)
    name = TRAPS[target]
    rec = records[(name, target, "inference")]
    assert rec["status"] == "fail", rec.get("status_reason")
    assert rec["max_abs_err"] > 1e-2 and rec["mismatch_fraction"] > 0.1, rec.get("status_reason")
    assert "outside rtol" in rec["status_reason"]
    rec = records[(name, target, "train")]
    assert rec["status"] == "fail", rec.get("status_reason")
    assert rec["grad_cosine"] < 0.99, json.dumps({k: rec.get(k) for k in ("grad_cosine", "status_reason")})
