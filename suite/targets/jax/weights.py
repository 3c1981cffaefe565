"""JAX's weight table: ``WEIGHTS[op](p, a) -> {native name: float32 array}`` for every op with parameters.

``p`` is the node's canonical float64 parameters, ``a`` its attributes; the result is the node's entry of
the params pytree, keyed by the names :mod:`suite.targets.jax.ops` reads. Native layouts, as a Flax user
would write them, mapped here and only here:

- conv kernels **HWIO** (``flax.linen.Conv``); with groups, I is C/groups as lax expects.
- dense ``kernel (Din, units)`` as canonical (``flax.linen.Dense``); batch_norm ``scale, bias, mean, var``
  (``flax.linen.BatchNorm``); layer_norm ``scale, bias``; embedding ``embedding (vocab, dim)``.
- attention as ``flax.linen.MultiHeadDotProductAttention``'s DenseGeneral kernels: query
  ``(D, heads, D/heads)``, key/value ``(D, kv_heads, D/heads)``, with biases ``(heads or kv_heads, D/heads)``,
  out ``(heads, D/heads, D)`` with bias ``(D)``; no ``*_bias`` leaves when use_bias is false.
- lstm as ``flax.linen.LSTMCell``: one kernel per gate, input ``i{i,f,g,o} (F, U)`` without bias and
  hidden ``h{i,f,g,o} (U, U)`` carrying the bias (stored here as ``b{gate}``). Canonical column blocks are
  in order i, f, g, o; the op re-fuses them in that order so one matmul per step serves all four gates.
- rms_norm ``scale`` (``flax.linen.RMSNorm``); position_embedding ``pos_embedding (1, L, D)`` and class_token
  ``cls (1, 1, D)``, as the Flax ViT (google-research/vision_transformer) names and shapes them.
- gru as ``flax.linen.GRUCell``'s per-gate kernels ``i{z,r,n} (F, U)`` and ``h{z,r,n} (U, U)``, with input
  biases ``bi{z,r,n}`` and (reset_after) hidden biases ``bh{z,r,n}`` kept apart (Flax folds the z, r ones);
  canonical blocks z, r, n, re-fused in that order by the op.

NumPy only: importing this module never imports jax.
"""
from __future__ import annotations

from typing import Mapping

from suite.targets.common.mappings import attention_heads, conv_hwio, f32, lstm_gate_blocks
from suite.targets.common.mappings import GRU_GATES
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
    h = attention_heads(p, a["num_heads"], a.get("num_kv_heads"))  # kv heads, no biases
    w = {}
    for name, key in (("query", "q"), ("key", "k"), ("value", "v"), ("out", "o")):
        w[f"{name}_kernel"] = h[key]
        if f"b{key}" in h:
            w[f"{name}_bias"] = h[f"b{key}"]
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

def rms_norm(p, a):
    return {"scale": f32(p["gamma"])}  # flax.linen.RMSNorm


def position_embedding(p, a):
    return {"pos_embedding": f32(p["table"][None])}  # the Flax ViT's AddPositionEmbs: (1, L, D)


def class_token(p, a):
    return {"cls": f32(p["token"].reshape(1, 1, -1))}  # the Flax ViT's class token: (1, 1, D)


WEIGHTS.update({"rms_norm": rms_norm, "position_embedding": position_embedding, "class_token": class_token})
def gru(p, a):
    """Per-gate blocks as ``flax.linen.GRUCell`` names them: input kernels ``i{z,r,n} (F, U)``, hidden
    ``h{z,r,n} (U, U)``; input biases ``bi{z,r,n}`` and (reset_after) hidden biases ``bh{z,r,n}``. Flax
    folds the hidden z and r biases into the input ones; they stay apart here so every canonical element
    has exactly one native counterpart (train mode maps gradients back through them)."""
    u = a["units"]
    keys = [("i", "kernel"), ("h", "recurrent_kernel"), ("bi", "bias")]
    if a["reset_after"]:
        keys.append(("bh", "recurrent_bias"))
    return {f"{prefix}{gate}": block for prefix, key in keys
            for gate, block in lstm_gate_blocks(p[key], u, GRU_GATES).items()}


WEIGHTS.update({"gru": gru})
from suite.targets.common.mappings import conv_transpose_hwoi  # noqa: E402


def conv2d_transpose(p, a):
    """IOHW -> (kh, kw, filters, C): flax.linen.ConvTranspose's kernel with ``transpose_kernel=True``."""
    w = {"kernel": conv_transpose_hwoi(p["kernel"])}
    if "bias" in p:
        w["bias"] = f32(p["bias"])
    return w


WEIGHTS.update({"conv2d_transpose": conv2d_transpose})


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
