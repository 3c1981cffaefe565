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
              "gelu": lambda t: nn.gelu(t, approximate=False)}[name]
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
    jnp, hi = jx.jnp, jx.hi
    x = g.tracker.canon(vals[0])
    num_heads, causal = node.attrs["num_heads"], node.attrs["causal"]
    proj = {n: jnp.einsum("nld,dhk->nlhk", x, p[f"{n}_kernel"], precision=hi) + p[f"{n}_bias"]
            for n in ("query", "key", "value")}
    hd = x.shape[-1] // num_heads
    s = jnp.einsum("nqhk,nshk->nhqs", proj["query"], proj["key"], precision=hi) / math.sqrt(hd)
    if causal:  # -inf as the reference; the diagonal is always kept, so no row is all -inf
        l = x.shape[1]
        s = jnp.where(jnp.tril(jnp.ones((l, l), bool)), s, -jnp.inf)
    o = jnp.einsum("nhqs,nshk->nqhk", jx.jax.nn.softmax(s, axis=-1), proj["value"], precision=hi)
    return Val(jnp.einsum("nqhk,hkd->nqd", o, p["out_kernel"], precision=hi) + p["out_bias"])


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

# ==== issue 12 [act]: activations, norms, shape and embedding ops (rms_norm, silu, hard_swish, hard_sigmoid, relu6, gelu approximate, slice, pad, position_embedding, class_token, dropout) ====
# ==== issue 12 [attn]: attention: num_kv_heads, use_bias, rope ====
# ==== issue 12 [gru]: gru ====
# ==== issue 12 [spatial]: conv2d_transpose, resize ====
