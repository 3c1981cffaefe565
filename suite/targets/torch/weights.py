"""torch's weight table: ``WEIGHTS[op](p, a) -> {native name: float32 array}`` for every op with parameters.

``p`` is the node's canonical float64 parameters, ``a`` its attributes; the result is keyed by the parameter
or buffer name of the module :mod:`suite.targets.torch.ops` builds for the op (dotted for a child module).
Canonical weights are mapped here, and only here, to torch's layouts in float32:

* dense ``kernel (in, out)`` -> ``Linear.weight (out, in)`` (transpose);
* conv ``OIHW`` is torch's native layout;
* attention ``wq, wk, wv (in, out)`` -> packed ``in_proj_weight (3D, D) = [wq.T; wk.T; wv.T]``;
* LSTM gate order is i, f, g, o in both; ``weight_ih = kernel.T``, ``weight_hh = recurrent_kernel.T``;
  torch adds two biases, so the canonical one goes in ``bias_ih`` and ``bias_hh`` is zero.

NumPy only: importing this module never imports torch.
"""
from __future__ import annotations

import numpy as np

from suite.targets.common.mappings import attention_packed, f32


def dense(p, a):
    w = {"weight": f32(p["kernel"].T)}
    if a["use_bias"]:
        w["bias"] = f32(p["bias"])
    return w


def conv2d(p, a):
    w = {"weight": f32(p["kernel"])}  # OIHW: torch's own layout
    if a["use_bias"]:
        w["bias"] = f32(p["bias"])
    return w


def batch_norm(p, a):
    return {"weight": f32(p["gamma"]), "bias": f32(p["beta"]),
            "running_mean": f32(p["moving_mean"]), "running_var": f32(p["moving_var"])}


def layer_norm(p, a):
    return {"weight": f32(p["gamma"]), "bias": f32(p["beta"])}


def embedding(p, a):
    return {"weight": f32(p["table"])}


def attention(p, a):
    packed = attention_packed(p)
    return {"in_proj_weight": packed["in_proj_weight"], "in_proj_bias": packed["in_proj_bias"],
            "out_proj.weight": packed["out_proj_weight"], "out_proj.bias": packed["out_proj_bias"]}


def lstm(p, a):
    bias = f32(p["bias"])
    return {"weight_ih_l0": f32(p["kernel"].T), "weight_hh_l0": f32(p["recurrent_kernel"].T), "bias_ih_l0": bias,
            "bias_hh_l0": np.zeros_like(bias)}  # torch sums two biases; the canonical model has one


WEIGHTS = {"dense": dense, "conv2d": conv2d, "batch_norm": batch_norm, "layer_norm": layer_norm,
           "embedding": embedding, "attention": attention, "lstm": lstm}

# ==== issue 12 [act]: activations, norms, shape and embedding ops (rms_norm, silu, hard_swish, hard_sigmoid, relu6, gelu approximate, slice, pad, position_embedding, class_token, dropout) ====
# ==== issue 12 [attn]: attention: num_kv_heads, use_bias, rope ====
# ==== issue 12 [gru]: gru ====
# ==== issue 12 [spatial]: conv2d_transpose, resize ====
