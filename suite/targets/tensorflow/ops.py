"""TensorFlow's op table: ``OPS[op](tf, g, node, vals, w) -> Val``, one function per op of suite/ops.py.

Each function computes one workload node with raw TensorFlow ops (tf.nn / tf.linalg over tf.Variables, no
Keras layers), called while the tf.function is traced:

* ``tf``: the tensorflow module;
* ``g``: the :class:`Graph` being traced (layout tracker, static shapes, train mode);
* ``node``: the workload node (``node.attrs``, ``node.name``);
* ``vals``: the node's inputs as :class:`~suite.targets.common.nhwc.Val` (tensor + NHWC flag);
* ``w``: the node's tf.Variables in TensorFlow's layout (:mod:`suite.targets.tensorflow.weights`), empty
  for ops without parameters.

Layout: images are NHWC. Each tensor carries a layout flag while the graph is walked
(:mod:`suite.targets.common.nhwc`): conv, pooling and 4-D batch norm produce NHWC; element-wise ops keep
their operand's layout; concat and softmax remap their axis; everything whose meaning depends on axis order
(flatten, reshape, transpose, matmul, mean, dense, layer norm on 4-D) first transposes back to canonical
NCHW. Rank-4 model inputs are made NHWC in ``prepare`` and NHWC outputs are made NCHW in ``to_numpy``, both
outside anything timed (:mod:`suite.targets.tensorflow.model`).

LSTM: the input projection of all steps is one matmul, then a tf.while_loop over time.
tf.raw_ops.BlockLSTM is not used: it has no XLA kernel.

Importing this module never imports tensorflow.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from suite.targets.common.nhwc import Tracker, Val

UNSUPPORTED: dict[str, str] = {}  # every op of workloads/README.md has a raw-TensorFlow form on CPU and GPU


@dataclass(frozen=True)
class Graph:
    """What the op functions share while one graph is traced.

    Attributes:
        tracker: the NHWC layout tracker (built on the framework's transpose / softmax / add / ...).
        shapes: tensor name -> static canonical shape (the cell is fixed).
        training: batch norm normalises with the batch statistics (train mode).
        bn_momentum: with ``training``, also move the moving statistics towards the batch's (Keras'
            convention), as a training step does; None leaves them alone.
    """

    tracker: Tracker
    shapes: Mapping
    training: bool = False
    bn_momentum: float | None = None


def _dense(tf, x, kernel, bias):
    y = tf.matmul(x, kernel) if x.shape.rank == 2 else tf.tensordot(x, kernel, axes=1)
    return y if bias is None else y + bias


def _pool(tf, g, node, vals, fn):
    a = node.attrs
    k, s = a["pool_size"], a["strides"]
    return Val(fn(g.tracker.nhwc(vals[0]), [1, k[0], k[1], 1], [1, s[0], s[1], 1], a["padding"].upper()), True)


def dense(tf, g, node, vals, w):
    return Val(_dense(tf, g.tracker.canon(vals[0]), w["kernel"], w["bias"] if node.attrs["use_bias"] else None))


def conv2d(tf, g, node, vals, w):
    a = node.attrs
    x = g.tracker.nhwc(vals[0])
    s, d = a["strides"], a["dilation"]
    pad = a["padding"].upper()  # TensorFlow's SAME is the canonical rule
    if "dw_kernel" in w:
        y = tf.nn.depthwise_conv2d(x, w["dw_kernel"], [1, s[0], s[1], 1], pad, dilations=d)
    else:  # groups == 1, or grouped: Conv2D infers groups from C / kernel input depth
        y = tf.nn.conv2d(x, w["kernel"], [1, s[0], s[1], 1], pad, dilations=[1, d[0], d[1], 1])
    if a["use_bias"]:
        y = tf.nn.bias_add(y, w["bias"])  # NHWC: channels last
    return Val(y, True)


def max_pool2d(tf, g, node, vals, w):
    return _pool(tf, g, node, vals, tf.nn.max_pool2d)


def avg_pool2d(tf, g, node, vals, w):
    return _pool(tf, g, node, vals, tf.nn.avg_pool2d)  # SAME already excludes padded positions


def global_avg_pool(tf, g, node, vals, w):
    return Val(tf.reduce_mean(g.tracker.nhwc(vals[0]), axis=[1, 2]))


def batch_norm(tf, g, node, vals, w):
    """Channels last in both (N, C) and NHWC, so the statistics broadcast as (C,)."""
    v = vals[0]
    x = g.tracker.nhwc(v) if v.t.shape.rank == 4 else v.t
    if g.training:  # batch mean and biased variance over every axis but channels (last)
        mean, var = tf.nn.moments(x, axes=list(range(x.shape.rank - 1)))
        if g.bn_momentum is not None:
            w["moving_mean"].assign_sub((w["moving_mean"] - mean) * (1.0 - g.bn_momentum))
            w["moving_var"].assign_sub((w["moving_var"] - var) * (1.0 - g.bn_momentum))
    else:
        mean, var = w["moving_mean"], w["moving_var"]
    y = tf.nn.batch_normalization(x, mean, var, w["beta"], w["gamma"], node.attrs["epsilon"])
    return Val(y, y.shape.rank == 4)


def layer_norm(tf, g, node, vals, w):
    x = g.tracker.canon(vals[0])
    mu, var = tf.nn.moments(x, axes=[-1], keepdims=True)  # biased variance
    return Val(tf.nn.batch_normalization(x, mu, var, w["beta"], w["gamma"], node.attrs["epsilon"]))


def _elementwise(name):
    """An activation keeps its operand's layout."""
    def op(tf, g, node, vals, w):
        fn = {"relu": tf.nn.relu, "sigmoid": tf.sigmoid, "tanh": tf.tanh,
              "gelu": lambda t: tf.nn.gelu(t, approximate=False)}[name]
        return Val(fn(vals[0].t), vals[0].nhwc)

    op.__name__ = op.__qualname__ = name
    return op


relu, gelu, sigmoid, tanh = (_elementwise(n) for n in ("relu", "gelu", "sigmoid", "tanh"))


def _layout_free(tf, g, node, vals, w):
    """softmax / add / multiply / concat / transpose in the inputs' own layout (common.nhwc.Tracker)."""
    return g.tracker.layout_free(node.op, vals, node.attrs)


softmax = add = multiply = concat = transpose = _layout_free


def matmul(tf, g, node, vals, w):
    c = g.tracker.canon
    return Val(tf.linalg.matmul(c(vals[0]), c(vals[1]), transpose_b=node.attrs["transpose_b"]))


def reshape(tf, g, node, vals, w):
    return Val(tf.reshape(g.tracker.canon(vals[0]), g.shapes[node.name]))  # static shapes: the cell is fixed


flatten = reshape


def mean(tf, g, node, vals, w):
    a = node.attrs
    return Val(tf.reduce_mean(g.tracker.canon(vals[0]), axis=list(a["axis"]), keepdims=a["keepdims"]))


def embedding(tf, g, node, vals, w):
    return Val(tf.gather(w["table"], g.tracker.canon(vals[0])))


def attention(tf, g, node, vals, w):
    x = g.tracker.canon(vals[0])
    num_heads, causal = node.attrs["num_heads"], node.attrs["causal"]
    n, l, d = x.shape
    hd = d // num_heads

    def heads(t):  # N, L, D -> N, h, L, hd
        return tf.transpose(tf.reshape(t, [n, l, num_heads, hd]), [0, 2, 1, 3])

    q = heads(_dense(tf, x, w["wq"], w["bq"]))
    k = heads(_dense(tf, x, w["wk"], w["bk"]))
    val = heads(_dense(tf, x, w["wv"], w["bv"]))
    scores = tf.matmul(q, k, transpose_b=True) * (1.0 / math.sqrt(hd))
    if causal:
        # -inf above the diagonal: exp gives exactly 0, and the diagonal keeps every row finite.
        mask = np.triu(np.full((l, l), -np.inf, dtype=np.float32), k=1)
        scores = scores + tf.constant(mask)
    out = tf.matmul(tf.nn.softmax(scores, axis=-1), val)
    out = tf.reshape(tf.transpose(out, [0, 2, 1, 3]), [n, l, d])
    return Val(_dense(tf, out, w["wo"], w["bo"]))


def lstm(tf, g, node, vals, w):
    x = g.tracker.canon(vals[0])
    units, return_sequences = node.attrs["units"], node.attrs["return_sequences"]
    n, t, f = x.shape
    # Input projection of every step in one matmul, time-major for the loop: (T, N, 4U).
    xz = tf.reshape(tf.matmul(tf.reshape(x, [n * t, f]), w["kernel"]) + w["bias"], [n, t, 4 * units])
    xz = tf.transpose(xz, [1, 0, 2])
    rk = w["recurrent_kernel"]
    seq = tf.TensorArray(tf.float32, size=t, element_shape=[n, units])

    def step(i, h, c, seq):
        z = xz[i] + tf.matmul(h, rk)
        zi, zf, zg, zo = tf.split(z, 4, axis=1)  # canonical gate order i, f, g, o
        c = tf.sigmoid(zf) * c + tf.sigmoid(zi) * tf.tanh(zg)
        h = tf.sigmoid(zo) * tf.tanh(c)
        return i + 1, h, c, (seq.write(i, h) if return_sequences else seq)

    zeros = tf.zeros([n, units], tf.float32)
    _, h, _, seq = tf.while_loop(lambda i, *_: i < t, step, (tf.constant(0), zeros, zeros, seq),
                                 maximum_iterations=t)
    return Val(tf.transpose(seq.stack(), [1, 0, 2]) if return_sequences else h)


OPS = {"dense": dense, "conv2d": conv2d, "max_pool2d": max_pool2d, "avg_pool2d": avg_pool2d,
       "global_avg_pool": global_avg_pool, "batch_norm": batch_norm, "layer_norm": layer_norm,
       "relu": relu, "gelu": gelu, "sigmoid": sigmoid, "tanh": tanh, "softmax": softmax, "add": add,
       "multiply": multiply, "matmul": matmul, "reshape": reshape, "flatten": flatten, "transpose": transpose,
       "concat": concat, "mean": mean, "embedding": embedding, "attention": attention, "lstm": lstm}

# ==== issue 12 [act]: activations, norms, shape and embedding ops (rms_norm, silu, hard_swish, hard_sigmoid, relu6, gelu approximate, slice, pad, position_embedding, class_token, dropout) ====
# ==== issue 12 [attn]: attention: num_kv_heads, use_bias, rope ====
# ==== issue 12 [gru]: gru ====
# ==== issue 12 [spatial]: conv2d_transpose, resize ====
