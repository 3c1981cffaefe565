"""TensorFlow's weight table: ``WEIGHTS[op](p, a) -> {native name: float32 array}`` for every op with parameters.

``p`` is the node's canonical float64 parameters, ``a`` its attributes; the result is keyed by the name
:mod:`suite.targets.tensorflow.ops` reads for the op. Native layouts (canonical -> TensorFlow), mapped here
and only here:

* Conv kernels are HWIO: TensorFlow's CPU kernels only implement NHWC convolution and pooling.
* Depthwise conv (groups == C): kernel (kh, kw, C, multiplier) under ``dw_kernel``; output channel c*m + j
  is canonical output channel c*m + j, so OIHW (C*m, 1, kh, kw) -> reshape (C, m, kh, kw) -> HWCM.
  ``tf.nn.depthwise_conv2d`` cannot stride and dilate at once: that case stays a grouped Conv2D.
* Other grouped conv: ``tf.nn.conv2d`` with an HWIO kernel of input depth C/groups; TF 2.21 runs
  grouped Conv2D on CPU in graph and XLA mode, so no split/concat is needed.
* Dense and attention kernels are (in, out): native for tf.matmul, unchanged.
* LSTM: fused kernel (F, 4U), recurrent kernel (U, 4U) in the canonical gate order i, f, g, o (unchanged).
* GRU: kernel (F, 3U), recurrent kernel (U, 3U), bias and recurrent_bias (3U) in the canonical gate order
  z, r, n (unchanged).
* Batch norm, layer norm, rms_norm, position_embedding, class_token and embedding parameters keep their
  canonical names and shapes.

NumPy only: importing this module never imports tensorflow.
"""
from __future__ import annotations

from typing import Mapping

from suite.targets.common.mappings import conv_hwio, depthwise_kernel, f32, is_depthwise
from suite.targets.common.optables import lookup


def _same(p, a):
    """Every parameter float32, names and layouts unchanged."""
    return {k: f32(v) for k, v in p.items()}


def depthwise(a, kernel_oihw_shape) -> bool:
    """Whether a conv2d runs as ``tf.nn.depthwise_conv2d``: groups > 1 with one input channel per group,
    and not dilated and strided at once (depthwise_conv2d cannot; grouped Conv2D can)."""
    o, i, _, _ = kernel_oihw_shape
    return is_depthwise(a, i * a["groups"], i)


def conv2d(p, a):
    w = {k: f32(v) for k, v in p.items() if k != "kernel"}
    k = p["kernel"]  # OIHW
    if depthwise(a, k.shape):
        w["dw_kernel"] = depthwise_kernel(k, a["groups"])
    else:  # groups == 1, or grouped: Conv2D infers groups from C / kernel input depth
        w["kernel"] = conv_hwio(k)
    return w


dense = batch_norm = layer_norm = embedding = attention = lstm = _same

WEIGHTS = {"dense": dense, "conv2d": conv2d, "batch_norm": batch_norm, "layer_norm": layer_norm,
           "embedding": embedding, "attention": attention, "lstm": lstm}

WEIGHTS.update({"rms_norm": _same, "position_embedding": _same, "class_token": _same})  # canonical names, shapes
WEIGHTS.update({"gru": _same})  # canonical z, r, n blocks, names and shapes unchanged
from suite.targets.common.mappings import conv_transpose_hwoi  # noqa: E402


def conv2d_transpose(p, a):
    """IOHW (C, filters, kh, kw) -> (kh, kw, filters, C), tf.nn.conv2d_transpose's layout; bias unchanged."""
    w = {k: f32(v) for k, v in p.items() if k != "kernel"}
    w["kernel"] = conv_transpose_hwoi(p["kernel"])
    return w


WEIGHTS.update({"conv2d_transpose": conv2d_transpose})


def native_weights(workload, weights: Mapping) -> dict[str, dict]:
    """Canonical float64 weights -> float32 arrays in TensorFlow's layout, per node (through ``WEIGHTS``,
    read at call time, so a test may patch an entry)."""
    out = {}
    for node in workload.nodes:
        p = weights.get(node.name)
        if not p:
            continue
        out[node.name] = lookup(WEIGHTS, node.op, "tensorflow", "weight table")(p, node.attrs)
    return out
