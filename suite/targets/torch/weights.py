"""torch's weight table: ``WEIGHTS[op](p, a) -> {native name: float32 array}`` for every op with parameters.

``p`` is the node's canonical float64 parameters, ``a`` its attributes; the result is keyed by the parameter
or buffer name of the module :mod:`suite.targets.torch.ops` builds for the op (dotted for a child module).
Canonical weights are mapped here, and only here, to torch's layouts in float32:

* dense ``kernel (in, out)`` -> ``Linear.weight (out, in)`` (transpose);
* conv ``OIHW`` is torch's native layout;
* attention ``wq, wk, wv (in, out)`` -> packed ``in_proj_weight (3D, D) = [wq.T; wk.T; wv.T]``
  (nn.MultiheadAttention); with grouped kv heads, no biases or rope: one nn.Linear each, ``weight = w.T``;
* LSTM gate order is i, f, g, o in both; ``weight_ih = kernel.T``, ``weight_hh = recurrent_kernel.T``;
  torch adds two biases, so the canonical one goes in ``bias_ih`` and ``bias_hh`` is zero.
* rms_norm ``gamma`` -> ``nn.RMSNorm.weight``; position_embedding ``table (L, D)`` -> ``pos_embedding (1, L, D)``
  and class_token ``token (D)`` -> ``class_token (1, 1, D)`` (torchvision's ViT parameters);
* GRU gate blocks are canonical z, r, n but nn.GRU's r, z, n (reordered); ``weight_ih = kernel.T``,
  ``weight_hh = recurrent_kernel.T``, ``bias_ih = bias``, ``bias_hh = recurrent_bias`` (reset_after=false:
  ops.py's own loop-over-time module with the same names and order, no ``bias_hh``).

NumPy only: importing this module never imports torch.
"""
from __future__ import annotations

import numpy as np

from suite.targets.common.mappings import attention_packed, f32
from suite.targets.common.mappings import gates_reordered


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
    if not packed_attention(a):  # the q, k, v, o nn.Linear of ops.attention_sdpa
        return attention_linears(p, a)
    packed = attention_packed(p)
    return {"in_proj_weight": packed["in_proj_weight"], "in_proj_bias": packed["in_proj_bias"],
            "out_proj.weight": packed["out_proj_weight"], "out_proj.bias": packed["out_proj_bias"]}


def lstm(p, a):
    bias = f32(p["bias"])
    return {"weight_ih_l0": f32(p["kernel"].T), "weight_hh_l0": f32(p["recurrent_kernel"].T), "bias_ih_l0": bias,
            "bias_hh_l0": np.zeros_like(bias)}  # torch sums two biases; the canonical model has one


WEIGHTS = {"dense": dense, "conv2d": conv2d, "batch_norm": batch_norm, "layer_norm": layer_norm,
           "embedding": embedding, "attention": attention, "lstm": lstm}

def rms_norm(p, a):
    return {"weight": f32(p["gamma"])}  # nn.RMSNorm


def position_embedding(p, a):
    return {"pos_embedding": f32(p["table"][None])}  # (L, D) -> torchvision's (1, L, D)


def class_token(p, a):
    return {"class_token": f32(p["token"].reshape(1, 1, -1))}  # (D,) -> torchvision's (1, 1, D)


WEIGHTS.update({"rms_norm": rms_norm, "position_embedding": position_embedding, "class_token": class_token})
from suite.targets.torch.ops import packed_attention  # noqa: E402  (NumPy-only at import, like this module)


def attention_linears(p, a):
    """Canonical (in, out) projections -> the nn.Linear ``q, k, v, o`` of ops.attention_sdpa: ``weight = w.T``
    ((Hkv*hd, D) for k and v), ``bias`` only with use_bias."""
    w = {}
    for c in "qkvo":
        w[f"{c}.weight"] = f32(p["w" + c].T)
        if "b" + c in p:
            w[f"{c}.bias"] = f32(p["b" + c])
    return w


TORCH_GRU_GATES = ("r", "z", "n")  # nn.GRU's row blocks: reset, update, new (canonical: z, r, n)


def gru(p, a):
    """Canonical z, r, n -> nn.GRU's r, z, n row blocks: ``weight_ih = kernel.T``, ``weight_hh =
    recurrent_kernel.T``, ``bias_ih = bias``, ``bias_hh = recurrent_bias`` (reset_after=true). With
    reset_after=false (ops.py's own module, same names) there is no ``bias_hh``."""
    u = a["units"]
    w = {"weight_ih_l0": f32(gates_reordered(p["kernel"], u, TORCH_GRU_GATES).T),
         "weight_hh_l0": f32(gates_reordered(p["recurrent_kernel"], u, TORCH_GRU_GATES).T),
         "bias_ih_l0": gates_reordered(p["bias"], u, TORCH_GRU_GATES)}
    if a["reset_after"]:
        w["bias_hh_l0"] = gates_reordered(p["recurrent_bias"], u, TORCH_GRU_GATES)
    return w


WEIGHTS.update({"gru": gru})
def conv2d_transpose(p, a):
    w = {"weight": f32(p["kernel"])}  # IOHW: ConvTranspose2d's own layout (in, out, kh, kw)
    if a["use_bias"]:
        w["bias"] = f32(p["bias"])
    return w


WEIGHTS.update({"conv2d_transpose": conv2d_transpose})
