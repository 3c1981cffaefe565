"""JAX's op table: ``OPS[op](jx, g, node, vals, p) -> Val``, one function per op of suite/ops.py.

Each function computes one workload node with jax.numpy / jax.lax, called while ``apply`` is traced:

* ``jx``: the jax namespace from :func:`native` (``jax``, ``jnp``, ``lax`` and ``hi``, the HIGHEST precision);
* ``g``: the :class:`Graph` being traced (layout tracker, train mode);
* ``node``: the workload node (``node.attrs``, ``node.name``);
* ``vals``: the node's inputs as :class:`~suite.targets.common.nhwc.Val` (array + NHWC flag);
* ``p``: the node's leaves of the params pytree in JAX's layout (:mod:`suite.targets.jax.weights`), empty
  for ops without parameters.

Layout, as a Flax user would write it: images are NHWC. Each value carries a layout flag while the graph is
walked (:mod:`suite.targets.common.nhwc`, the tracker TensorFlow and Keras use): conv and pooling produce
NHWC (and the model inputs that feed them arrive NHWC); element-wise ops and batch norm keep their operand's
layout; global_avg_pool reduces whichever spatial axes its input has; softmax, add, multiply, concat and
transpose work in their inputs' own layout (the tracker's rules); everything whose meaning depends on axis
order (flatten, reshape, matmul, mean, layer_norm, dense, ...) first reads the canonical NCHW value. The
flags are Python decisions fixed at trace time, so ``to_numpy`` undoes them without a second graph walk.

Dots and convs pass ``Precision.HIGHEST``: on GPU/TPU the default is reduced precision (TF32/bf16 passes),
which would fail float32 tolerances for reasons that are not porting bugs.

Importing this module never imports jax.
"""
from __future__ import annotations

import functools
import math
import types
from dataclasses import dataclass

from suite.ops import same_padding
from suite.targets.common.mappings import LSTM_GATES
from suite.targets.common.nhwc import Tracker, Val

UNSUPPORTED: dict[str, str] = {}  # every op of the catalogue is expressible with jax.lax / jax.numpy


@functools.lru_cache(maxsize=None)
def native() -> types.SimpleNamespace:
    """``jax``, ``jax.numpy``, ``jax.lax`` and ``hi`` (``lax.Precision.HIGHEST``), imported on first use."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    return types.SimpleNamespace(jax=jax, jnp=jnp, lax=lax, hi=lax.Precision.HIGHEST)


@dataclass(frozen=True)
class Graph:
    """What the op functions share while one ``apply`` is traced.

    Attributes:
        tracker: the NHWC layout tracker (built on jnp.transpose / jax.nn.softmax / jnp.add / ...).
        training: batch norm normalises with the batch statistics (a training step) instead of the moving
            ones; every other op is the same in both modes.
    """

    tracker: Tracker
    training: bool = False


def _pads(x, k, s, d, padding):
    # Explicit TF 'same' pairs per spatial dim (x is NHWC): lax's "SAME" string agrees today, but the suite's
    # contract is the rule in suite/ops.py, so we compute it rather than trust a convention.
    if padding == "valid":
        return [(0, 0), (0, 0)]
    return [same_padding(x.shape[1 + i], k[i], s[i], d[i])[1:] for i in range(2)]


def _window(jx, x, init, op, pool_size, strides, padding):
    pp = _pads(x, pool_size, strides, (1, 1), padding)
    return jx.lax.reduce_window(x, init, op, (1, *pool_size, 1), (1, *strides, 1), [(0, 0), *pp, (0, 0)])


def dense(jx, g, node, vals, p):
    y = jx.jnp.matmul(g.tracker.canon(vals[0]), p["kernel"], precision=jx.hi)
    return Val(y + p["bias"] if node.attrs["use_bias"] else y)


def conv2d(jx, g, node, vals, p):
    a = node.attrs
    x = g.tracker.nhwc(vals[0])
    y = jx.lax.conv_general_dilated(
        x, p["kernel"], window_strides=a["strides"],
        padding=_pads(x, a["kernel_size"], a["strides"], a["dilation"], a["padding"]),
        rhs_dilation=a["dilation"], dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=a["groups"], precision=jx.hi)  # with groups, the HWIO kernel's I is C/groups
    return Val(y + p["bias"] if a["use_bias"] else y, True)


def max_pool2d(jx, g, node, vals, p):
    a = node.attrs
    x = g.tracker.nhwc(vals[0])
    return Val(_window(jx, x, -jx.jnp.inf, jx.lax.max, a["pool_size"], a["strides"], a["padding"]), True)


def avg_pool2d(jx, g, node, vals, p):
    a = node.attrs
    x = g.tracker.nhwc(vals[0])
    total = _window(jx, x, 0.0, jx.lax.add, a["pool_size"], a["strides"], a["padding"])
    # Divide by the number of real (unpadded) positions per window: TensorFlow's rule. XLA folds this count
    # to a constant since it depends on shapes only.
    ones = jx.jnp.ones((1, *x.shape[1:3], 1), x.dtype)
    return Val(total / _window(jx, ones, 0.0, jx.lax.add, a["pool_size"], a["strides"], a["padding"]), True)


def global_avg_pool(jx, g, node, vals, p):
    v = vals[0]
    return Val(jx.jnp.mean(v.t, axis=(1, 2) if v.nhwc else (2, 3)))


def batch_norm(jx, g, node, vals, p):
    jnp, lax = jx.jnp, jx.lax
    v, eps = vals[0], node.attrs["epsilon"]
    x = v.t
    # Channels sit last in NHWC and in (N, C); on canonical NCHW they broadcast from axis 1.
    shape = (-1,) if v.nhwc or x.ndim == 2 else (-1, 1, 1)
    if g.training:  # batch statistics: mean and biased variance over every axis but the channels
        axes = tuple(range(x.ndim - 1)) if v.nhwc else (0, *range(2, x.ndim))
        mean = jnp.mean(x, axis=axes, keepdims=True)
        var = jnp.mean(jnp.square(x - mean), axis=axes, keepdims=True)  # two-pass, as layer_norm
        return Val((x - mean) * lax.rsqrt(var + eps) * p["scale"].reshape(shape) + p["bias"].reshape(shape), v.nhwc)
    scale = (p["scale"] * lax.rsqrt(p["var"] + eps)).reshape(shape)
    return Val((x - p["mean"].reshape(shape)) * scale + p["bias"].reshape(shape), v.nhwc)


def layer_norm(jx, g, node, vals, p):
    jnp = jx.jnp
    x = g.tracker.canon(vals[0])
    mu = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x - mu), axis=-1, keepdims=True)  # two-pass: biased, no cancellation
    return Val((x - mu) * jx.lax.rsqrt(var + node.attrs["epsilon"]) * p["scale"] + p["bias"])


def _elementwise(name):
    """An activation keeps its operand's layout."""
    def op(jx, g, node, vals, p):
        nn = jx.jax.nn
        fn = {"relu": nn.relu, "sigmoid": nn.sigmoid, "tanh": jx.jnp.tanh,
              # jax.nn.gelu defaults to the tanh approximation: the attribute is always passed
              "gelu": lambda t: nn.gelu(t, approximate=node.attrs["approximate"] == "tanh")}[name]
        return Val(fn(vals[0].t), vals[0].nhwc)

    op.__name__ = op.__qualname__ = name
    return op


relu, gelu, sigmoid, tanh = (_elementwise(n) for n in ("relu", "gelu", "sigmoid", "tanh"))


def _layout_free(jx, g, node, vals, p):
    """softmax / add / multiply / concat / transpose in the inputs' own layout (common.nhwc.Tracker)."""
    return g.tracker.layout_free(node.op, vals, node.attrs)


softmax = add = multiply = concat = transpose = _layout_free


def matmul(jx, g, node, vals, p):
    a, b = g.tracker.canon(vals[0]), g.tracker.canon(vals[1])
    return Val(jx.jnp.matmul(a, jx.jnp.swapaxes(b, -1, -2) if node.attrs["transpose_b"] else b, precision=jx.hi))


def reshape(jx, g, node, vals, p):
    x = g.tracker.canon(vals[0])
    return Val(x.reshape((x.shape[0], *node.attrs["shape"])))


def flatten(jx, g, node, vals, p):
    x = g.tracker.canon(vals[0])
    return Val(x.reshape(x.shape[0], -1))


def mean(jx, g, node, vals, p):
    a = node.attrs
    return Val(jx.jnp.mean(g.tracker.canon(vals[0]), axis=tuple(a["axis"]), keepdims=a["keepdims"]))


def embedding(jx, g, node, vals, p):
    return Val(jx.jnp.take(p["embedding"], g.tracker.canon(vals[0]), axis=0))


def attention(jx, g, node, vals, p):
    """Flax-style einsums; grouped kv heads (:func:`attention_core`), no biases, rope."""
    x = g.tracker.canon(vals[0])
    q, k, v = attention_qkv(jx, x, p, node.attrs)
    return Val(attention_out(jx, attention_core(jx, q, k, v, node.attrs["causal"]), p))


def lstm(jx, g, node, vals, p):
    jax, jnp, hi = jx.jax, jx.jnp, jx.hi
    x = g.tracker.canon(vals[0])
    units, return_sequences = node.attrs["units"], node.attrs["return_sequences"]
    # Re-fuse the per-gate kernels in i, f, g, o order (what flax's OptimizedLSTMCell does) and project every
    # time step's input in one matmul outside the recurrence.
    wi = jnp.concatenate([p[f"i{gate}"] for gate in LSTM_GATES], axis=1)
    wh = jnp.concatenate([p[f"h{gate}"] for gate in LSTM_GATES], axis=1)
    b = jnp.concatenate([p[f"b{gate}"] for gate in LSTM_GATES])
    zx = jnp.einsum("ntf,fg->tng", x, wi, precision=hi) + b  # time-major for scan

    def step(carry, z_t):
        h, c = carry
        z = z_t + jnp.matmul(h, wh, precision=hi)
        i, f, gg, o = jnp.split(z, 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(gg)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (h, c), h

    zeros = jnp.zeros((x.shape[0], units), x.dtype)
    (h, _), hs = jx.lax.scan(step, (zeros, zeros), zx)
    return Val(jnp.swapaxes(hs, 0, 1) if return_sequences else h)


OPS = {"dense": dense, "conv2d": conv2d, "max_pool2d": max_pool2d, "avg_pool2d": avg_pool2d,
       "global_avg_pool": global_avg_pool, "batch_norm": batch_norm, "layer_norm": layer_norm,
       "relu": relu, "gelu": gelu, "sigmoid": sigmoid, "tanh": tanh, "softmax": softmax, "add": add,
       "multiply": multiply, "matmul": matmul, "reshape": reshape, "flatten": flatten, "transpose": transpose,
       "concat": concat, "mean": mean, "embedding": embedding, "attention": attention, "lstm": lstm}

def rms_norm(jx, g, node, vals, p):
    """flax.linen.RMSNorm's computation: x * rsqrt(mean(x^2) + eps) * scale."""
    x = g.tracker.canon(vals[0])
    ms = jx.jnp.mean(jx.jnp.square(x), axis=-1, keepdims=True)
    return Val(x * jx.lax.rsqrt(ms + node.attrs["epsilon"]) * p["scale"])


def _act(name):
    """jax.nn's activation of that name (hard_sigmoid is relu6(x + 3) / 6); keeps the operand's layout."""
    def op(jx, g, node, vals, p):
        return Val(getattr(jx.jax.nn, name)(vals[0].t), vals[0].nhwc)

    op.__name__ = op.__qualname__ = name
    return op


silu, relu6, hard_sigmoid, hard_swish = (_act(n) for n in ("silu", "relu6", "hard_sigmoid", "hard_swish"))


def _axis_in_layout(v, axis):
    from suite.targets.common.nhwc import TO_NHWC_AXIS

    axis %= v.t.ndim
    return TO_NHWC_AXIS[axis] if v.nhwc else axis


def slice_(jx, g, node, vals, p):
    """lax.slice_in_dim with the bounds resolved at trace time, in the input's own layout."""
    from suite.ops import slice_range

    a, v = node.attrs, vals[0]
    ax = _axis_in_layout(v, a["axis"])
    begin, _, count = slice_range(v.t.shape[ax], a["start"], a["stop"], a["step"])
    return Val(jx.lax.slice_in_dim(v.t, begin, begin + (count - 1) * a["step"] + 1, a["step"], ax), v.nhwc)


def pad(jx, g, node, vals, p):
    """jnp.pad (constant), in the input's own layout (the canonical pairs permuted for NHWC)."""
    a, v = node.attrs, vals[0]
    pads = [(0, 0), *a["pads"]]
    if v.nhwc:
        pads = [pads[i] for i in (0, 2, 3, 1)]
    return Val(jx.jnp.pad(v.t, pads, constant_values=a["value"]), v.nhwc)


def position_embedding(jx, g, node, vals, p):
    """The Flax ViT's AddPositionEmbs: ``x + pos_embedding`` (1, L, D)."""
    return Val(g.tracker.canon(vals[0]) + p["pos_embedding"])


def class_token(jx, g, node, vals, p):
    """The Flax ViT's ``cls`` (1, 1, D), tiled over the batch and concatenated first."""
    x = g.tracker.canon(vals[0])
    return Val(jx.jnp.concatenate([jx.jnp.tile(p["cls"], (x.shape[0], 1, 1)), x], axis=1))


def dropout(jx, g, node, vals, p):
    """Identity: flax.linen.Dropout(deterministic=True), as in verification (train mode included)."""
    return vals[0]


OPS.update({"rms_norm": rms_norm, "silu": silu, "relu6": relu6, "hard_sigmoid": hard_sigmoid,
            "hard_swish": hard_swish, "slice": slice_, "pad": pad, "position_embedding": position_embedding,
            "class_token": class_token, "dropout": dropout})
def _rope(jx, x, rope):
    """Rotary embedding of x (N, L, h, hd): pair i of the first r dims turns by pos * base^(-2i/r). half: pairs
    (i, i + r/2) (GPT-NeoX, Hugging Face Llama); interleaved: pairs (2i, 2i + 1) (GPT-J, Meta's Llama)."""
    jnp = jx.jnp
    length, hd = x.shape[1], x.shape[-1]
    r = rope.dims(hd)
    inv_freq = 1.0 / (rope.base ** (jnp.arange(0, r, 2, dtype=jnp.float32) / r))
    freqs = jnp.arange(length, dtype=jnp.float32)[:, None] * inv_freq[None, :]  # L, r/2
    cos, sin = jnp.cos(freqs)[:, None, :], jnp.sin(freqs)[:, None, :]  # broadcast over heads
    if rope.style == "half":
        x1, x2 = x[..., :r // 2], x[..., r // 2:r]
        return jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin, x[..., r:]], axis=-1)
    x1, x2 = x[..., 0:r:2], x[..., 1:r:2]
    rot = jnp.stack([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1).reshape(x[..., :r].shape)
    return jnp.concatenate([rot, x[..., r:]], axis=-1)


def attention_qkv(jx, x, p, a):
    """q (N, L, H, hd) and k, v (N, L, Hkv, hd) through the DenseGeneral kernels, biases where present, rope
    on q and k."""
    jnp, hi = jx.jnp, jx.hi
    proj = {}
    for name in ("query", "key", "value"):
        y = jnp.einsum("nld,dhk->nlhk", x, p[f"{name}_kernel"], precision=hi)
        proj[name] = y + p[f"{name}_bias"] if f"{name}_bias" in p else y
    q, k = proj["query"], proj["key"]
    if a.get("rope") is not None:
        q, k = _rope(jx, q, a["rope"]), _rope(jx, k, a["rope"])
    return q, k, proj["value"]


def attention_core(jx, q, k, v, causal):
    """softmax(q kᵀ / sqrt(hd)) v with Hkv = k's heads: query head h = kv * G + j reads kv head h // G
    (G = H / Hkv contiguous query heads per kv head), as jax.nn.dot_product_attention and Hugging Face's
    repeat_kv group them. Returns (N, L, H, hd)."""
    jnp, hi = jx.jnp, jx.hi
    n, l, h, hd = q.shape
    hkv = k.shape[2]
    qg = q.reshape(n, l, hkv, h // hkv, hd)
    s = jnp.einsum("nqkgd,nskd->nkgqs", qg, k, precision=hi) / math.sqrt(hd)
    if causal:  # -inf as the reference; the diagonal is always kept, so no row is all -inf
        s = jnp.where(jnp.tril(jnp.ones((l, l), bool)), s, -jnp.inf)
    o = jnp.einsum("nkgqs,nskd->nqkgd", jx.jax.nn.softmax(s, axis=-1), v, precision=hi)
    return o.reshape(n, l, h, hd)


def attention_out(jx, o, p):
    y = jx.jnp.einsum("nqhk,hkd->nqd", o, p["out_kernel"], precision=jx.hi)
    return y + p["out_bias"] if "out_bias" in p else y


def gru(jx, g, node, vals, p):
    jax, jnp, hi = jx.jax, jx.jnp, jx.hi
    x = g.tracker.canon(vals[0])
    units, return_sequences, reset_after = (node.attrs[k] for k in ("units", "return_sequences", "reset_after"))
    gates = ("z", "r", "n")  # canonical block order (suite.targets.common.mappings.GRU_GATES)
    # Re-fuse the per-gate kernels and project every time step's input in one matmul outside the recurrence.
    wi = jnp.concatenate([p[f"i{gate}"] for gate in gates], axis=1)
    wh = jnp.concatenate([p[f"h{gate}"] for gate in gates], axis=1)
    bi = jnp.concatenate([p[f"bi{gate}"] for gate in gates])
    zx = jnp.einsum("ntf,fg->tng", x, wi, precision=hi) + bi  # time-major for scan
    bh = jnp.concatenate([p[f"bh{gate}"] for gate in gates]) if reset_after else None

    def step(h, z_t):
        x_z, x_r, x_n = jnp.split(z_t, 3, axis=-1)
        if reset_after:
            h_z, h_r, h_n = jnp.split(jnp.matmul(h, wh, precision=hi) + bh, 3, axis=-1)
            z, r = jax.nn.sigmoid(x_z + h_z), jax.nn.sigmoid(x_r + h_r)
            cand = jnp.tanh(x_n + r * h_n)
        else:
            h_z, h_r = jnp.split(jnp.matmul(h, wh[:, :2 * units], precision=hi), 2, axis=-1)
            z, r = jax.nn.sigmoid(x_z + h_z), jax.nn.sigmoid(x_r + h_r)
            cand = jnp.tanh(x_n + jnp.matmul(r * h, wh[:, 2 * units:], precision=hi))
        h = (1.0 - z) * cand + z * h
        return h, h

    h, hs = jx.lax.scan(step, jnp.zeros((x.shape[0], units), x.dtype), zx)
    return Val(jnp.swapaxes(hs, 0, 1) if return_sequences else h)


OPS.update({"gru": gru})
def conv2d_transpose(jx, g, node, vals, p):
    """lax.conv_transpose with ``transpose_kernel=True`` (the gradient of a conv: spatially flipped, I/O
    swapped; Flax ConvTranspose's default ``transpose_kernel=False`` does not flip: a trap for asymmetric
    kernels). Kernel (kh, kw, filters, C) under 'HWIO' (the forward conv's). Padding as explicit pairs on
    the stride-dilated input: ``k - 1 - crop`` per side (a negative crop, i.e. zero rows, pads more), never
    lax's 'SAME'/'VALID' strings, whose transposed rule is JAX's own. Asymmetric pairs are padded
    symmetrically to the larger side and the extra row sliced off, and zero rows past the full output
    (k - 1 + n) are a jnp.pad: jax2tf -> TFLite reads an asymmetric pair of a dilated conv as symmetric
    (wrong shape) and refuses a pad above k - 1 ("failed to legalize mhlo.convolution")."""
    from suite.ops import conv_transpose_out

    a = node.attrs
    x = g.tracker.nhwc(vals[0])
    crops = [conv_transpose_out(x.shape[1 + i], a["kernel_size"][i], a["strides"][i], a["padding"],
                                a["output_padding"][i])[1:] for i in range(2)]
    pads = [(k - 1 - before, k - 1 - max(after, 0)) for (before, after), k in zip(crops, a["kernel_size"])]
    sym = [(max(lo, hi),) * 2 for lo, hi in pads]
    y = jx.lax.conv_transpose(x, p["kernel"], a["strides"], sym, dimension_numbers=("NHWC", "HWIO", "NHWC"),
                              transpose_kernel=True, precision=jx.hi)
    _, oh, ow, _ = y.shape
    (t, b), (l, r) = [(s - lo, s - hi) for (s, _), (lo, hi) in zip(sym, pads)]
    if t or b or l or r:
        y = y[:, t:oh - b, l:ow - r, :]
    zeros = [max(-after, 0) for _, after in crops]  # valid's output_padding, SAME with k < s: zero rows
    if any(zeros):
        y = jx.jnp.pad(y, [(0, 0), (0, zeros[0]), (0, zeros[1]), (0, 0)])
    return Val(y + p["bias"] if a["use_bias"] else y, True)


def resize(jx, g, node, vals, p):
    """jax.image.resize (half-pixel centres; nearest reads floor(dst / s) for integer scales; upsampling, so
    its antialiasing changes nothing). It has no align_corners: that is two gathers and a lerp per axis."""
    a = node.attrs
    x = g.tracker.nhwc(vals[0])
    n, h, w, c = x.shape
    oh, ow = h * a["scale"][0], w * a["scale"][1]
    if not a["align_corners"]:
        return Val(jx.jax.image.resize(x, (n, oh, ow, c), method=a["mode"]), True)
    from suite.targets.common.resize import bilinear_taps

    for axis, size, s in ((1, h, a["scale"][0]), (2, w, a["scale"][1])):
        lo, hi, f = bilinear_taps(size, s, True)
        f = f.reshape((1, -1, 1, 1) if axis == 1 else (1, 1, -1, 1))
        x = jx.jnp.take(x, lo, axis=axis) * (1.0 - f) + jx.jnp.take(x, hi, axis=axis) * f
    return Val(x, True)


OPS.update({"conv2d_transpose": conv2d_transpose, "resize": resize})
