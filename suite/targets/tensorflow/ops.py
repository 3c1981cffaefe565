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
GRU (gate blocks z, r, n, both reset_after forms) the same way: one input projection, a tf.while_loop.

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
              "gelu": lambda t: tf.nn.gelu(t, approximate=node.attrs["approximate"] == "tanh")}[name]
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
    """Raw ops; k, v project to Hkv heads, each repeated (tf.repeat) for its group of
    H / Hkv contiguous query heads; rope (:func:`_rope`) on q and k; biases only with use_bias."""
    x = g.tracker.canon(vals[0])
    num_heads, causal = node.attrs["num_heads"], node.attrs["causal"]
    hkv, rope = attention_kv_heads(node.attrs), node.attrs.get("rope")
    n, l, d = x.shape
    hd = d // num_heads

    def heads(t, h=num_heads):  # N, L, h*hd -> N, h, L, hd
        return tf.transpose(tf.reshape(t, [n, l, h, hd]), [0, 2, 1, 3])

    q = heads(_dense(tf, x, w["wq"], w.get("bq")))
    k = heads(_dense(tf, x, w["wk"], w.get("bk")), hkv)
    val = heads(_dense(tf, x, w["wv"], w.get("bv")), hkv)
    if rope is not None:
        q, k = _rope(tf, q, rope), _rope(tf, k, rope)
    if hkv != num_heads:
        k, val = tf.repeat(k, num_heads // hkv, axis=1), tf.repeat(val, num_heads // hkv, axis=1)
    scores = tf.matmul(q, k, transpose_b=True) * (1.0 / math.sqrt(hd))
    if causal:
        # -inf above the diagonal: exp gives exactly 0, and the diagonal keeps every row finite.
        mask = np.triu(np.full((l, l), -np.inf, dtype=np.float32), k=1)
        scores = scores + tf.constant(mask)
    out = tf.matmul(tf.nn.softmax(scores, axis=-1), val)
    out = tf.reshape(tf.transpose(out, [0, 2, 1, 3]), [n, l, d])
    return Val(_dense(tf, out, w["wo"], w.get("bo")))


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

def rms_norm(tf, g, node, vals, w):
    x = g.tracker.canon(vals[0])
    ms = tf.reduce_mean(tf.square(x), axis=-1, keepdims=True)
    return Val(x * tf.math.rsqrt(ms + node.attrs["epsilon"]) * w["gamma"])


def _hard_sigmoid(tf, x):
    """relu6(x + 3) / 6, PyTorch's and Keras 3's; tf.keras.activations.hard_sigmoid (Keras 2) is 0.2 x + 0.5."""
    return tf.nn.relu6(x + 3.0) * (1.0 / 6.0)


def _act(fn):
    """An activation keeps its operand's layout."""
    def op(tf, g, node, vals, w):
        return Val(fn(tf, vals[0].t), vals[0].nhwc)

    return op


silu = _act(lambda tf, x: tf.nn.silu(x))
relu6 = _act(lambda tf, x: tf.nn.relu6(x))
hard_sigmoid = _act(_hard_sigmoid)
hard_swish = _act(lambda tf, x: x * _hard_sigmoid(tf, x))


def _axis_in_layout(v, axis, rank):
    """The axis of ``v``'s own layout holding canonical ``axis`` (NHWC values keep their layout)."""
    from suite.targets.common.nhwc import TO_NHWC_AXIS

    axis %= rank
    return TO_NHWC_AXIS[axis] if v.nhwc else axis


def slice_(tf, g, node, vals, w):
    """Python slicing of one axis, in the input's own layout."""
    a, v = node.attrs, vals[0]
    ax = _axis_in_layout(v, a["axis"], v.t.shape.rank)
    idx = (slice(None),) * ax + (slice(a["start"], a["stop"], a["step"]),)
    return Val(v.t[idx], v.nhwc)


def pad(tf, g, node, vals, w):
    """tf.pad (constant), in the input's own layout (the canonical pairs permuted for NHWC)."""
    a, v = node.attrs, vals[0]
    pads = [(0, 0), *a["pads"]]
    if v.nhwc:
        pads = [pads[i] for i in (0, 2, 3, 1)]
    return Val(tf.pad(v.t, pads, constant_values=a["value"]), v.nhwc)


def position_embedding(tf, g, node, vals, w):
    return Val(g.tracker.canon(vals[0]) + w["table"])


def class_token(tf, g, node, vals, w):
    x = g.tracker.canon(vals[0])
    n, _, d = g.shapes[node.inputs[0]]
    return Val(tf.concat([tf.broadcast_to(tf.reshape(w["token"], [1, 1, d]), [n, 1, d]), x], axis=1))


def dropout(tf, g, node, vals, w):
    """Identity (tf.nn.dropout always drops; verification compares deterministic computations)."""
    return Val(tf.identity(vals[0].t), vals[0].nhwc)


OPS.update({"rms_norm": rms_norm, "silu": silu, "relu6": relu6, "hard_sigmoid": hard_sigmoid,
            "hard_swish": hard_swish, "slice": slice_, "pad": pad, "position_embedding": position_embedding,
            "class_token": class_token, "dropout": dropout})
from suite.ops import attention_kv_heads  # noqa: E402


def _rope(tf, x, rope):
    """Rotary embedding of x (N, h, L, hd): pair i of the first r dims turns by pos * base^(-2i/r). half: pairs
    (i, i + r/2) (GPT-NeoX, Hugging Face Llama); interleaved: pairs (2i, 2i + 1) (GPT-J, Meta's Llama)."""
    length, hd = x.shape[-2], x.shape[-1]
    r = rope.dims(hd)
    inv_freq = 1.0 / tf.pow(rope.base, tf.range(0, r, 2, dtype=tf.float32) / r)
    freqs = tf.range(length, dtype=tf.float32)[:, None] * inv_freq[None, :]  # L, r/2
    cos, sin = tf.cos(freqs), tf.sin(freqs)
    if rope.style == "half":
        x1, x2 = x[..., :r // 2], x[..., r // 2:r]
        return tf.concat([x1 * cos - x2 * sin, x2 * cos + x1 * sin, x[..., r:]], axis=-1)
    x1, x2 = x[..., 0:r:2], x[..., 1:r:2]
    rot = tf.reshape(tf.stack([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1), [*x.shape[:-1], r])
    return tf.concat([rot, x[..., r:]], axis=-1)


def gru(tf, g, node, vals, w):
    """Like ``lstm``: one input projection for all steps, then a tf.while_loop over time (gate blocks
    z, r, n as canonical); the output is canonical (N, U) or (N, T, U)."""
    x = g.tracker.canon(vals[0])
    units, return_sequences = node.attrs["units"], node.attrs["return_sequences"]
    reset_after = node.attrs["reset_after"]
    n, t, f = x.shape
    xz = tf.reshape(tf.matmul(tf.reshape(x, [n * t, f]), w["kernel"]) + w["bias"], [n, t, 3 * units])
    xz = tf.transpose(xz, [1, 0, 2])  # time-major (T, N, 3U)
    rk = w["recurrent_kernel"]
    rk_zr, rk_n = rk[:, :2 * units], rk[:, 2 * units:]
    seq = tf.TensorArray(tf.float32, size=t, element_shape=[n, units])

    def step(i, h, seq):
        x_z, x_r, x_n = tf.split(xz[i], 3, axis=1)
        if reset_after:
            h_z, h_r, h_n = tf.split(tf.matmul(h, rk) + w["recurrent_bias"], 3, axis=1)
            z, r = tf.sigmoid(x_z + h_z), tf.sigmoid(x_r + h_r)
            cand = tf.tanh(x_n + r * h_n)
        else:
            h_z, h_r = tf.split(tf.matmul(h, rk_zr), 2, axis=1)
            z, r = tf.sigmoid(x_z + h_z), tf.sigmoid(x_r + h_r)
            cand = tf.tanh(x_n + tf.matmul(r * h, rk_n))
        h = (1.0 - z) * cand + z * h
        return i + 1, h, (seq.write(i, h) if return_sequences else seq)

    _, h, seq = tf.while_loop(lambda i, *_: i < t, step, (tf.constant(0), tf.zeros([n, units], tf.float32), seq),
                              maximum_iterations=t)
    return Val(tf.transpose(seq.stack(), [1, 0, 2]) if return_sequences else h)


OPS.update({"gru": gru})
def conv2d_transpose(tf, g, node, vals, w):
    """tf.nn.conv2d_transpose (NHWC, kernel (kh, kw, filters, C)); its output_shape argument *is* the
    padding rule: ``valid`` with the full size (plus output_padding: zero rows at the end) and ``same`` with
    H * s give exactly the canonical crops / pads (TensorFlow's SAME puts total // 2 first)."""
    a = node.attrs
    x = g.tracker.nhwc(vals[0])
    n, o, oh, ow = g.shapes[node.name]
    s = a["strides"]
    y = tf.nn.conv2d_transpose(x, w["kernel"], [n, oh, ow, o], [1, s[0], s[1], 1], a["padding"].upper())
    if a["use_bias"]:
        y = tf.nn.bias_add(y, w["bias"])
    return Val(y, True)


def resize(tf, g, node, vals, w):
    """nearest: each row and column repeated s times (floor(dst / s)). bilinear: two gathers and a lerp per
    axis (:func:`suite.targets.common.resize.bilinear_taps`), not tf.image.resize / resize_bilinear: under
    XLA (tensorflow:xla, TF 2.21 CPU) ResizeBilinear is wrong for some integer scales (half-pixel x3 or x5,
    align_corners x3 or x4: max abs errors 1.8-3.6 on N(0, 1) inputs) while graph mode is right, and the
    op cannot tell which one it is traced for."""
    from suite.targets.common.resize import bilinear_taps

    a = node.attrs
    x = g.tracker.nhwc(vals[0])
    _, _, h, wd = g.shapes[node.inputs[0]]
    if a["mode"] == "nearest":  # tf.repeat, not tf.image.resize: XLA has no ResizeNearestNeighborGrad
        return Val(tf.repeat(tf.repeat(x, a["scale"][0], axis=1), a["scale"][1], axis=2), True)
    for axis, size, s in ((1, h, a["scale"][0]), (2, wd, a["scale"][1])):
        lo, hi, f = bilinear_taps(size, s, a["align_corners"])
        f = tf.constant(f.reshape((1, -1, 1, 1) if axis == 1 else (1, 1, -1, 1)))
        x = tf.gather(x, lo, axis=axis) * (1.0 - f) + tf.gather(x, hi, axis=axis) * f
    return Val(x, True)


OPS.update({"conv2d_transpose": conv2d_transpose, "resize": resize})
