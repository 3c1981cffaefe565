"""The NumPy float64 reference: one function per op, written for clarity, not speed.

It is the oracle every target is compared with. Semantics are those of workloads/README.md.
"""
from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from suite.ops import same_padding


def _erf(x: np.ndarray) -> np.ndarray:
    # math.erf is correctly rounded in double precision; vectorised here to stay NumPy-only.
    return np.vectorize(math.erf, otypes=[np.float64])(x)


def dense(x, p, units, use_bias):
    y = x @ p["kernel"]
    return y + p["bias"] if use_bias else y


def _pad_amounts(size, k, s, d, padding):
    if padding == "valid":
        return 0, 0
    _, before, after = same_padding(size, k, s, d)
    return before, after


def _windows(x, kh, kw, sh, sw, dh, dw):
    """All (kh, kw) windows of a padded NCHW array: returns (N, C, OH, OW, kh, kw)."""
    n, c, h, w = x.shape
    oh = (h - ((kh - 1) * dh + 1)) // sh + 1
    ow = (w - ((kw - 1) * dw + 1)) // sw + 1
    out = np.empty((n, c, oh, ow, kh, kw), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            out[..., i, j] = x[:, :, i * dh: i * dh + (oh - 1) * sh + 1: sh, j * dw: j * dw + (ow - 1) * sw + 1: sw]
    return out


def _pad_nchw(x, kh, kw, sh, sw, dh, dw, padding, value):
    pt, pb = _pad_amounts(x.shape[2], kh, sh, dh, padding)
    pl, pr = _pad_amounts(x.shape[3], kw, sw, dw, padding)
    return np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=value)


def conv2d(x, p, filters, kernel_size, strides, dilation, padding, groups, use_bias):
    (kh, kw), (sh, sw), (dh, dw) = kernel_size, strides, dilation
    xp = _pad_nchw(x, kh, kw, sh, sw, dh, dw, padding, 0.0)
    win = _windows(xp, kh, kw, sh, sw, dh, dw)  # N, C, OH, OW, kh, kw
    k = p["kernel"]  # O, C/g, kh, kw
    cg, og = x.shape[1] // groups, filters // groups
    outs = []
    for g in range(groups):
        wg = win[:, g * cg:(g + 1) * cg]
        kg = k[g * og:(g + 1) * og]
        outs.append(np.einsum("ncyxij,ocij->noyx", wg, kg))
    y = np.concatenate(outs, axis=1)
    return y + p["bias"][None, :, None, None] if use_bias else y


def max_pool2d(x, p, pool_size, strides, padding):
    (kh, kw), (sh, sw) = pool_size, strides
    xp = _pad_nchw(x, kh, kw, sh, sw, 1, 1, padding, -np.inf)
    return _windows(xp, kh, kw, sh, sw, 1, 1).max(axis=(4, 5))


def avg_pool2d(x, p, pool_size, strides, padding):
    (kh, kw), (sh, sw) = pool_size, strides
    total = _windows(_pad_nchw(x, kh, kw, sh, sw, 1, 1, padding, 0.0), kh, kw, sh, sw, 1, 1).sum(axis=(4, 5))
    ones = np.ones((1, 1) + x.shape[2:])
    count = _windows(_pad_nchw(ones, kh, kw, sh, sw, 1, 1, padding, 0.0), kh, kw, sh, sw, 1, 1).sum(axis=(4, 5))
    return total / count


def global_avg_pool(x, p):
    return x.mean(axis=(2, 3))


def batch_norm(x, p, epsilon):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    scale = (p["gamma"] / np.sqrt(p["moving_var"] + epsilon)).reshape(shape)
    return (x - p["moving_mean"].reshape(shape)) * scale + p["beta"].reshape(shape)


def layer_norm(x, p, epsilon):
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + epsilon) * p["gamma"] + p["beta"]


def relu(x, p):
    return np.maximum(x, 0.0)


def gelu(x, p):
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def sigmoid(x, p):
    return 1.0 / (1.0 + np.exp(-x))


def tanh(x, p):
    return np.tanh(x)


def softmax(x, p, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def add(x, y, p):
    return x + y


def multiply(x, y, p):
    return x * y


def matmul(x, y, p, transpose_b):
    return x @ (np.swapaxes(y, -1, -2) if transpose_b else y)


def reshape(x, p, shape):
    return x.reshape((x.shape[0],) + tuple(shape))


def flatten(x, p):
    return x.reshape(x.shape[0], -1)


def transpose(x, p, perm):
    return x.transpose(perm)


def concat(*xs, axis):
    *xs, p = xs
    return np.concatenate(xs, axis=axis)


def mean(x, p, axis, keepdims):
    return x.mean(axis=tuple(axis), keepdims=keepdims)


def embedding(ids, p, vocab_size, dim):
    return p["table"][ids]


def attention(x, p, num_heads, causal):
    n, l, d = x.shape
    hd = d // num_heads

    def heads(t):  # N, L, D -> N, h, L, hd
        return t.reshape(n, l, num_heads, hd).transpose(0, 2, 1, 3)

    q = heads(x @ p["wq"] + p["bq"])
    k = heads(x @ p["wk"] + p["bk"])
    v = heads(x @ p["wv"] + p["bv"])
    scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(hd)
    if causal:
        scores = np.where(np.tril(np.ones((l, l), dtype=bool)), scores, -np.inf)
    out = softmax(scores, None, axis=-1) @ v  # N, h, L, hd
    return out.transpose(0, 2, 1, 3).reshape(n, l, d) @ p["wo"] + p["bo"]


def lstm(x, p, units, return_sequences):
    n, t, _ = x.shape
    h = np.zeros((n, units))
    c = np.zeros((n, units))
    seq = []
    for step in range(t):
        z = x[:, step] @ p["kernel"] + h @ p["recurrent_kernel"] + p["bias"]
        i, f, g, o = (z[:, k * units:(k + 1) * units] for k in range(4))
        c = sigmoid(f, None) * c + sigmoid(i, None) * np.tanh(g)
        h = sigmoid(o, None) * np.tanh(c)
        seq.append(h)
    return np.stack(seq, axis=1) if return_sequences else h


# ==== issue 12 [act]: activations, norms, shape and embedding ops (rms_norm, silu, hard_swish, hard_sigmoid, relu6, gelu approximate, slice, pad, position_embedding, class_token, dropout) ====
# ==== issue 12 [attn]: attention: num_kv_heads, use_bias, rope ====
# ==== issue 12 [gru]: gru ====
# ==== issue 12 [spatial]: conv2d_transpose, resize ====


OP_FUNCS = {f.__name__: f for f in [
    dense, conv2d, max_pool2d, avg_pool2d, global_avg_pool, batch_norm, layer_norm, relu, gelu, sigmoid, tanh,
    softmax, add, multiply, matmul, reshape, flatten, transpose, concat, mean, embedding, attention, lstm
    # ==== issue 12 [act]: functions ====
    # ==== issue 12 [attn]: functions ====
    # ==== issue 12 [gru]: functions ====
    # ==== issue 12 [spatial]: functions ====
]}


def run_op(op: str, inputs: list[np.ndarray], params: Mapping[str, np.ndarray], attrs: Mapping) -> np.ndarray:
    """Applies one op in float64 (integer inputs stay integer: they are ids)."""
    xs = [a if a.dtype.kind in "iu" else np.asarray(a, dtype=np.float64) for a in inputs]
    return OP_FUNCS[op](*xs, params, **attrs)


def reference(workload, weights, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """Runs the whole graph in float64; returns the workload outputs in order."""
    values = dict(inputs)
    for node in workload.nodes:
        values[node.name] = run_op(node.op, [values[s] for s in node.inputs], weights.get(node.name, {}),
                                   node.attrs)
    return [np.asarray(values[o], dtype=np.float64) for o in workload.outputs]
