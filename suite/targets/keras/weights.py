"""Keras 3's weight table: ``WEIGHTS[op](p, a) -> [float32 array]`` for every op with parameters.

``p`` is the node's canonical float64 parameters, ``a`` its attributes; the result is the list
``layer.set_weights`` takes for the layer :mod:`suite.targets.keras.ops` builds for the op, in that layer's
own weight order (set_weights checks count and shapes). Native layouts (canonical -> Keras), mapped here
and only here:

* Conv2D kernel HWIO (OIHW transposed); grouped conv is ``Conv2D(groups=g)`` with input depth C/g.
  Depthwise (groups == C, not strided and dilated at once) is ``DepthwiseConv2D`` with kernel
  (kh, kw, C, m) from OIHW (C*m, 1, kh, kw) reshaped (C, m, kh, kw). Bias (O) when ``use_bias``.
* Dense kernel (in, out) unchanged. BatchNormalization weights [gamma, beta, moving_mean,
  moving_variance]; LayerNormalization [gamma, beta]; Embedding [table] (ids fed as int32).
* MultiHeadAttention(key_dim = D/h), or GroupedQueryAttention(head_dim = D/h) with grouped kv heads or
  rope: query kernel (D, h, D/h), key/value kernels (D, kv_heads, D/h), with biases (heads, D/h) when
  use_bias, output kernel (h, D/h, D) with bias (D).
* LSTM: Keras' gate order i, f, c, o is the canonical i, f, g, o (c is the cell candidate, canonical g),
  so kernel (F, 4U), recurrent kernel (U, 4U) and bias (4U) pass with their gate blocks in place.
* RMSNormalization [scale (D)]; position_embedding's layer [embeddings (L, D)] (keras_hub's PositionEmbedding);
  class_token's layer [class_token (1, 1, D)] (keras_hub's ViT).
* GRU: Keras' gate order z, r, h is the canonical z, r, n: kernel (F, 3U) and recurrent kernel (U, 3U)
  unchanged; bias (2, 3U) = [bias; recurrent_bias] with reset_after, else bias (3U).

NumPy only: importing this module never imports keras or a backend.
"""
from __future__ import annotations

from suite.targets.common.mappings import (attention_heads, conv_hwio, depthwise_kernel, f32, is_depthwise,
                                           lstm_fused, lstm_gate_blocks)

KERAS_LSTM_GATES = ("i", "f", "g", "o")  # Keras' i, f, c, o in canonical letters: the same order


def depthwise(a, kernel_oihw_shape) -> bool:
    """Whether a conv2d is Keras' DepthwiseConv2D (the op table decides the same from the input's C)."""
    _, i, _, _ = kernel_oihw_shape
    return is_depthwise(a, i * a["groups"], i)


def conv2d(p, a):
    k = p["kernel"]  # OIHW
    kernel = depthwise_kernel(k, a["groups"]) if depthwise(a, k.shape) else conv_hwio(k)
    return [kernel] + ([f32(p["bias"])] if a["use_bias"] else [])


def dense(p, a):
    return [f32(p["kernel"])] + ([f32(p["bias"])] if a["use_bias"] else [])


def batch_norm(p, a):
    return [f32(p[k]) for k in ("gamma", "beta", "moving_mean", "moving_var")]


def layer_norm(p, a):
    return [f32(p["gamma"]), f32(p["beta"])]


def embedding(p, a):
    return [f32(p["table"])]


def attention(p, a):
    """MultiHeadAttention / GroupedQueryAttention weights: [query, key, value, output] kernels, each followed
    by its bias when use_bias (key/value with num_kv_heads heads)."""
    h = attention_heads(p, a["num_heads"], a.get("num_kv_heads"))
    return [h[k] for c in "qkvo" for k in (c, "b" + c) if k in h]


def lstm(p, a, gates=KERAS_LSTM_GATES):
    """[kernel, recurrent_kernel, bias], gate blocks in Keras' order ``gates`` (canonical letters)."""
    u = a["units"]
    return [lstm_fused(lstm_gate_blocks(p[k], u), gates) for k in ("kernel", "recurrent_kernel", "bias")]


WEIGHTS = {"dense": dense, "conv2d": conv2d, "batch_norm": batch_norm, "layer_norm": layer_norm,
           "embedding": embedding, "attention": attention, "lstm": lstm}

def rms_norm(p, a):
    return [f32(p["gamma"])]  # RMSNormalization [scale]


def position_embedding(p, a):
    return [f32(p["table"])]  # ops.position_embedding's layer: [embeddings (L, D)], as keras_hub's


def class_token(p, a):
    return [f32(p["token"].reshape(1, 1, -1))]  # ops.class_token's layer: [class_token (1, 1, D)]


WEIGHTS.update({"rms_norm": rms_norm, "position_embedding": position_embedding, "class_token": class_token})
def gru(p, a):
    """[kernel, recurrent_kernel, bias]: Keras' gate order z, r, h is the canonical z, r, n (unchanged);
    with reset_after the bias is (2, 3U) = [bias; recurrent_bias], else (3U,)."""
    bias = [p["bias"], p["recurrent_bias"]] if a["reset_after"] else p["bias"]  # f32 stacks the pair
    return [f32(p["kernel"]), f32(p["recurrent_kernel"]), f32(bias)]


WEIGHTS.update({"gru": gru})
from suite.targets.common.mappings import conv_transpose_hwoi  # noqa: E402


def conv2d_transpose(p, a):
    """Conv2DTranspose [kernel (kh, kw, filters, C), bias]: IOHW transposed."""
    return [conv_transpose_hwoi(p["kernel"])] + ([f32(p["bias"])] if a["use_bias"] else [])


WEIGHTS.update({"conv2d_transpose": conv2d_transpose})
