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


def gelu(x, p, approximate="none"):
    """none: the exact x * Phi(x) (erf form, PyTorch's default); tanh: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715
    x^3))) (the default of jax.nn.gelu and keras.ops.gelu)."""
    if approximate == "tanh":
        return 0.5 * x * (1.0 + np.tanh(GELU_TANH_C * (x + 0.044715 * x ** 3)))
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


def attention(x, p, num_heads, causal, num_kv_heads=None, use_bias=True, rope=None):
    """Self-attention; grouped kv heads (query head h reads kv head h // (H / Hkv)),
    optional biases, rotary embeddings on q and k (see attention_qkv)."""
    n, l, d = x.shape
    hd = d // num_heads
    q, k, v = attention_qkv(x, p, num_heads, num_kv_heads, rope)
    scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(hd)
    if causal:
        scores = np.where(np.tril(np.ones((l, l), dtype=bool)), scores, -np.inf)
    out = softmax(scores, None, axis=-1) @ v  # N, h, L, hd
    return _attention_proj(out.transpose(0, 2, 1, 3).reshape(n, l, d), p, "o")


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


GELU_TANH_C = math.sqrt(2.0 / math.pi)


def rms_norm(x, p, epsilon):
    """x / sqrt(mean(x^2 over the last axis) + epsilon) * gamma: no mean subtracted, no beta."""
    return x / np.sqrt((x * x).mean(axis=-1, keepdims=True) + epsilon) * p["gamma"]


def silu(x, p):
    return x * sigmoid(x, None)


def relu6(x, p):
    return np.minimum(np.maximum(x, 0.0), 6.0)


def hard_sigmoid(x, p):
    """relu6(x + 3) / 6 (PyTorch, Keras 3); not Keras 2 / tf.keras' 0.2 x + 0.5."""
    return relu6(x + 3.0, None) / 6.0


def hard_swish(x, p):
    return x * hard_sigmoid(x, None)


def slice_(x, p, axis, start, stop, step):
    """Python slicing of one axis (negative start / stop count from the end; stop None: to the end)."""
    idx = [slice(None)] * x.ndim
    idx[axis % x.ndim] = slice(start, stop, step)
    return x[tuple(idx)]


slice_.__name__ = "slice"  # the op's name; the function keeps builtins.slice usable in this module


def pad(x, p, pads, value):
    return np.pad(x, [(0, 0)] + [tuple(q) for q in pads], constant_values=value)


def position_embedding(x, p):
    return x + p["table"]


def class_token(x, p):
    n, _, d = x.shape
    return np.concatenate([np.broadcast_to(p["token"], (n, 1, d)), x], axis=1)


def dropout(x, p, rate):
    """Identity: inference, and train-mode verification, compare deterministic computations."""
    return x.copy()

def _attention_proj(x, p, c):
    """x @ w{c} (+ b{c} when the node has biases)."""
    y = x @ p["w" + c]
    return y + p["b" + c] if "b" + c in p else y


def rope_cos_sin(length, head_dim, rope):
    """cos, sin of the rotary angles, (L, r/2): angle[pos, i] = pos * base^(-2i/r), r = rope.dims(head_dim)."""
    r = rope.dims(head_dim)
    inv_freq = rope.base ** (-np.arange(0, r, 2, dtype=np.float64) / r)
    angles = np.arange(length, dtype=np.float64)[:, None] * inv_freq[None, :]
    return np.cos(angles), np.sin(angles)


def apply_rope(t, rope, inverse=False):
    """Rotates the first r dims of every head of t (..., L, hd) by the position's angles.

    half: pairs (x[i], x[i + r/2]) (GPT-NeoX, Hugging Face Llama); interleaved: pairs (x[2i], x[2i+1])
    (GPT-J, Meta's original). Pair i turns by angle i: (a, b) -> (a cos - b sin, b cos + a sin); dims >= r
    are unchanged. inverse: the opposite rotation (the transpose, for the backward pass)."""
    length, hd = t.shape[-2:]
    r = rope.dims(hd)
    cos, sin = rope_cos_sin(length, hd, rope)
    sin = -sin if inverse else sin
    out = t.copy()
    if rope.style == "half":
        a, b = t[..., :r // 2], t[..., r // 2:r]
        out[..., :r // 2], out[..., r // 2:r] = a * cos - b * sin, b * cos + a * sin
    else:
        a, b = t[..., 0:r:2], t[..., 1:r:2]
        out[..., 0:r:2], out[..., 1:r:2] = a * cos - b * sin, b * cos + a * sin
    return out


def attention_qkv(x, p, num_heads, num_kv_heads=None, rope=None):
    """q (N, H, L, hd), and k, v (N, H, L, hd) with each kv head repeated for its group of H / Hkv
    contiguous query heads (Hugging Face's repeat_kv); rope applied to q and k."""
    n, l, d = x.shape
    hd = d // num_heads
    hkv = num_kv_heads or num_heads

    def heads(t, h):  # N, L, h*hd -> N, h, L, hd
        return t.reshape(n, l, h, hd).transpose(0, 2, 1, 3)

    q = heads(_attention_proj(x, p, "q"), num_heads)
    k = heads(_attention_proj(x, p, "k"), hkv)
    v = heads(_attention_proj(x, p, "v"), hkv)
    if rope is not None:
        q, k = apply_rope(q, rope), apply_rope(k, rope)
    groups = num_heads // hkv
    return q, np.repeat(k, groups, axis=1), np.repeat(v, groups, axis=1)

def gru(x, p, units, return_sequences, reset_after):
    """Gate blocks z, r, n (update, reset, new: Keras' order); h' = (1 - z) * n + z * h, h0 = 0."""
    n, t, _ = x.shape
    u = units
    h = np.zeros((n, u))
    seq = []
    for step in range(t):
        xz = x[:, step] @ p["kernel"] + p["bias"]
        hz = h @ p["recurrent_kernel"] + (p["recurrent_bias"] if reset_after else 0.0)
        z = sigmoid(xz[:, :u] + hz[:, :u], None)
        r = sigmoid(xz[:, u:2 * u] + hz[:, u:2 * u], None)
        if reset_after:
            cand = np.tanh(xz[:, 2 * u:] + r * hz[:, 2 * u:])
        else:
            cand = np.tanh(xz[:, 2 * u:] + (r * h) @ p["recurrent_kernel"][:, 2 * u:])
        h = (1.0 - z) * cand + z * h
        seq.append(h)
    return np.stack(seq, axis=1) if return_sequences else h

def _crop_or_pad(full, crops):
    """Crops (positive) or zero-pads (negative) the spatial axes of an NCHW array: crops = ((t, b), (l, r))."""
    (t, b), (l, r) = crops
    full = np.pad(full, ((0, 0), (0, 0), (max(-t, 0), max(-b, 0)), (max(-l, 0), max(-r, 0))))
    t, b, l, r = max(t, 0), max(b, 0), max(l, 0), max(r, 0)
    return full[:, :, t:full.shape[2] - b, l:full.shape[3] - r]


def _conv_t_crops(x_shape, kernel_size, strides, padding, output_padding):
    from suite.ops import conv_transpose_out
    return tuple(conv_transpose_out(size, k, st, padding, op)[1:]
                 for size, k, st, op in zip(x_shape[2:], kernel_size, strides, output_padding))


def conv2d_transpose(x, p, filters, kernel_size, strides, padding, output_padding, use_bias):
    """The adjoint of a stride-s convolution: full[n, o, i*s + a, j*s + b] += sum_c x[n, c, i, j] * K[c, o, a, b]
    (kernel IOHW), then cropped / padded per suite.ops.conv_transpose_out."""
    (kh, kw), (sh, sw) = kernel_size, strides
    n, _, h, w = x.shape
    full = np.zeros((n, filters, (h - 1) * sh + kh, (w - 1) * sw + kw))
    for a in range(kh):
        for b in range(kw):
            full[:, :, a:a + (h - 1) * sh + 1:sh, b:b + (w - 1) * sw + 1:sw] += np.einsum(
                "ncij,co->noij", x, p["kernel"][:, :, a, b])
    y = _crop_or_pad(full, _conv_t_crops(x.shape, kernel_size, strides, padding, output_padding))
    return y + p["bias"][None, :, None, None] if use_bias else y


def resize_matrix(size: int, scale: int, mode: str, align_corners: bool) -> np.ndarray:
    """The (size * scale, size) interpolation matrix of one axis: out = M @ in.

    nearest: src = floor(dst / s). bilinear, half-pixel centres: src = (dst + 0.5) / s - 0.5 clamped to
    [0, size - 1]; align_corners: src = dst * (size - 1) / (out - 1) (0 when out == 1). Weights 1 - f on
    floor(src) and f on min(floor(src) + 1, size - 1).
    """
    out = size * scale
    m = np.zeros((out, size))
    dst = np.arange(out)
    if mode == "nearest":
        m[dst, dst // scale] = 1.0
        return m
    if align_corners:
        src = dst * ((size - 1) / (out - 1)) if out > 1 else np.zeros(out)
    else:
        src = np.clip((dst + 0.5) / scale - 0.5, 0.0, size - 1)
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, size - 1)
    frac = src - lo
    np.add.at(m, (dst, lo), 1.0 - frac)
    np.add.at(m, (dst, hi), frac)
    return m


def resize(x, p, mode, scale, align_corners):
    mh = resize_matrix(x.shape[2], scale[0], mode, align_corners)
    mw = resize_matrix(x.shape[3], scale[1], mode, align_corners)
    return np.einsum("yh,nchw,xw->ncyx", mh, x, mw)



OP_FUNCS = {f.__name__: f for f in [
    dense, conv2d, max_pool2d, avg_pool2d, global_avg_pool, batch_norm, layer_norm, relu, gelu, sigmoid, tanh,
    softmax, add, multiply, matmul, reshape, flatten, transpose, concat, mean, embedding, attention, lstm,
    rms_norm, silu, relu6, hard_sigmoid, hard_swish, slice_, pad, position_embedding, class_token, dropout,
    gru,
    conv2d_transpose, resize,
]}


def run_op(op: str, inputs: list[np.ndarray], params: Mapping[str, np.ndarray], attrs: Mapping) -> np.ndarray:
    """Applies one op in float64 (integer inputs stay integer: they are ids)."""
    xs = [a if a.dtype.kind in "iu" else np.asarray(a, dtype=np.float64) for a in inputs]
    return OP_FUNCS[op](*xs, params, **attrs)


def reference_values(workload, weights, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Runs the whole graph in float64; returns every value by name: the inputs, then each node's output."""
    values = dict(inputs)
    for node in workload.nodes:
        values[node.name] = run_op(node.op, [values[s] for s in node.inputs], weights.get(node.name, {}),
                                   node.attrs)
    return values


def reference(workload, weights, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """Runs the whole graph in float64; returns the workload outputs in order."""
    values = reference_values(workload, weights, inputs)
    return [np.asarray(values[o], dtype=np.float64) for o in workload.outputs]
