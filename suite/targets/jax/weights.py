"""JAX's weight table: ``WEIGHTS[op](p, a) -> {native name: float32 array}`` for every op with parameters.

``p`` is the node's canonical float64 parameters, ``a`` its attributes; the result is the node's entry of
the params pytree, keyed by the names :mod:`suite.targets.jax.ops` reads. Native layouts, as a Flax user
would write them, mapped here and only here:

- conv kernels **HWIO** (``flax.linen.Conv``); with groups, I is C/groups as lax expects.
- dense ``kernel (Din, units)`` as canonical (``flax.linen.Dense``); batch_norm ``scale, bias, mean, var``
  (``flax.linen.BatchNorm``); layer_norm ``scale, bias``; embedding ``embedding (vocab, dim)``.
- attention as ``flax.linen.MultiHeadDotProductAttention``'s DenseGeneral kernels: query/key/value
  ``(D, heads, D/heads)`` with bias ``(heads, D/heads)``, out ``(heads, D/heads, D)`` with bias ``(D)``.
- lstm as ``flax.linen.LSTMCell``: one kernel per gate, input ``i{i,f,g,o} (F, U)`` without bias and
  hidden ``h{i,f,g,o} (U, U)`` carrying the bias (stored here as ``b{gate}``). Canonical column blocks are
  in order i, f, g, o; the op re-fuses them in that order so one matmul per step serves all four gates.

NumPy only: importing this module never imports jax.
"""
from __future__ import annotations

from typing import Mapping

from suite.targets.common.mappings import attention_heads, conv_hwio, f32, lstm_gate_blocks
from suite.targets.common.optables import lookup


def dense(p, a):
    return {k: f32(v) for k, v in p.items()}  # (Din, units) is already Flax's layout


def conv2d(p, a):
    w = {"kernel": conv_hwio(p["kernel"])}
    if "bias" in p:
        w["bias"] = f32(p["bias"])
    return w


def batch_norm(p, a):
    return {"scale": f32(p["gamma"]), "bias": f32(p["beta"]), "mean": f32(p["moving_mean"]),
            "var": f32(p["moving_var"])}


def layer_norm(p, a):
    return {"scale": f32(p["gamma"]), "bias": f32(p["beta"])}


def embedding(p, a):
    return {"embedding": f32(p["table"])}


def attention(p, a):
    h = attention_heads(p, a["num_heads"])
    w = {}
    for name, key in (("query", "q"), ("key", "k"), ("value", "v")):
        w[f"{name}_kernel"], w[f"{name}_bias"] = h[key], h[f"b{key}"]
    w["out_kernel"], w["out_bias"] = h["o"], h["bo"]
    return w


def lstm(p, a):
    u = a["units"]
    w = {}
    for prefix, key in (("i", "kernel"), ("h", "recurrent_kernel"), ("b", "bias")):
        for gate, block in lstm_gate_blocks(p[key], u).items():
            w[f"{prefix}{gate}"] = block
    return w


WEIGHTS = {"dense": dense, "conv2d": conv2d, "batch_norm": batch_norm, "layer_norm": layer_norm,
           "embedding": embedding, "attention": attention, "lstm": lstm}

# ==== issue 12 [act]: activations, norms, shape and embedding ops (rms_norm, silu, hard_swish, hard_sigmoid, relu6, gelu approximate, slice, pad, position_embedding, class_token, dropout) ====
# ==== issue 12 [attn]: attention: num_kv_heads, use_bias, rope ====
# ==== issue 12 [gru]: gru ====
# ==== issue 12 [spatial]: conv2d_transpose, resize ====


def native_params(workload, weights: Mapping) -> dict[str, dict]:
    """Canonical float64 weights -> the params pytree (node -> name -> float32 array, JAX's layout), through
    ``WEIGHTS`` (read at call time, so a test may patch an entry). Nodes without parameters have no entry."""
    out = {}
    for node in workload.nodes:
        p = weights.get(node.name)
        if not p:
            continue
        out[node.name] = lookup(WEIGHTS, node.op, "jax", "weight table")(p, node.attrs)
    return out
