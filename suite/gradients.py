"""Hand-written float64 backward passes (vector-Jacobian products) for every op of :mod:`suite.reference`.

This is the oracle that framework gradients are checked against, so it uses no autodiff of any kind: each
op's backward is written out below, next to the forward it differentiates, in plain NumPy and for clarity.

* :func:`train_forward` runs the graph like ``suite.reference.reference`` but keeps every value, and in
  training mode normalises ``batch_norm`` with the batch statistics (mean and biased variance over every
  axis but 1), as every framework does in a training step.
* :func:`vjp` is one op's backward: given dLoss/dout, it returns dLoss/dinput for each input (``None``
  for integer ids) and dLoss/dparam for the op's trainable parameters.
* :func:`backward` walks the graph in reverse, accumulating dLoss/dvalue where a value feeds several
  nodes (residual adds), and returns dLoss/dparam for every trainable parameter.

Conventions are reference.py's: NCHW activations, OIHW conv kernels, dense kernels (in, out), TF SAME
padding, LSTM gates in order i, f, g, o. Batch norm's moving_mean / moving_var are buffers, not trainable.
"""
from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from suite import reference as ref

NON_TRAINABLE = {"batch_norm": ("moving_mean", "moving_var")}


def trainable_names(op: str, params: Mapping[str, np.ndarray]) -> list[str]:
    """The parameters of an op that receive gradients (all but batch norm's moving statistics)."""
    return [k for k in params if k not in NON_TRAINABLE.get(op, ())]


# ---------------------------------------------------------------- forward

def _bn_axes(x):
    return (0,) + tuple(range(2, x.ndim))


def _bn_shape(x):
    return (1, -1) + (1,) * (x.ndim - 2)


def batch_norm_train(x, p, epsilon):
    """Training-mode batch norm: normalises with the batch mean and biased variance per channel (axis 1)."""
    axes, shape = _bn_axes(x), _bn_shape(x)
    mu = x.mean(axis=axes, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)
    return (x - mu) / np.sqrt(var + epsilon) * p["gamma"].reshape(shape) + p["beta"].reshape(shape)


def _as_float64(a: np.ndarray) -> np.ndarray:
    return a if a.dtype.kind in "iu" else np.asarray(a, dtype=np.float64)


def train_forward(workload, weights, inputs, training: bool = True) -> dict[str, np.ndarray]:
    """Runs the graph in float64 like suite.reference.reference, but with training-mode batch_norm when
    training=True; returns every value by name (inputs and every node)."""
    values = {name: _as_float64(np.asarray(a)) for name, a in inputs.items()}
    for node in workload.nodes:
        xs = [values[s] for s in node.inputs]
        p = weights.get(node.name, {})
        if node.op == "batch_norm" and training:
            values[node.name] = batch_norm_train(xs[0], p, **node.attrs)
        else:
            values[node.name] = ref.run_op(node.op, xs, p, node.attrs)
    return values


# ---------------------------------------------------------------- helpers

def _unbroadcast(g: np.ndarray, shape: tuple) -> np.ndarray:
    """Sums a gradient of a broadcast result back to the shape of the operand that was broadcast."""
    g = g.sum(axis=tuple(range(g.ndim - len(shape)))) if g.ndim > len(shape) else g
    axes = tuple(i for i, (gs, s) in enumerate(zip(g.shape, shape)) if s == 1 and gs != 1)
    return g.sum(axis=axes, keepdims=True) if axes else g


def _unwindows(gwin, padded_shape, sh, sw, dh, dw):
    """Adjoint of reference._windows: scatter-adds (N, C, OH, OW, kh, kw) window gradients onto the padded input."""
    _, _, oh, ow, kh, kw = gwin.shape
    g = np.zeros(padded_shape)
    for i in range(kh):
        for j in range(kw):  # within one (i, j) the strided positions are distinct, so += does not collide
            g[:, :, i * dh: i * dh + (oh - 1) * sh + 1: sh, j * dw: j * dw + (ow - 1) * sw + 1: sw] += gwin[..., i, j]
    return g


def _unpad(gp, x_shape, kh, kw, sh, sw, dh, dw, padding):
    """Adjoint of reference._pad_nchw: the gradient of the padded array, cropped to the real elements."""
    pt, _ = ref._pad_amounts(x_shape[2], kh, sh, dh, padding)
    pl, _ = ref._pad_amounts(x_shape[3], kw, sw, dw, padding)
    return gp[:, :, pt:pt + x_shape[2], pl:pl + x_shape[3]]


# ---------------------------------------------------------------- per-op backward
# Each takes (inputs, params, out, gout, training, **attrs) and returns ([d input], {param: d param}).

def _dense(xs, p, out, gy, training, units, use_bias):
    x, = xs
    k = p["kernel"]
    grads = {"kernel": x.reshape(-1, k.shape[0]).T @ gy.reshape(-1, units)}
    if use_bias:
        grads["bias"] = gy.reshape(-1, units).sum(axis=0)
    return [gy @ k.T], grads


def _conv2d(xs, p, out, gy, training, filters, kernel_size, strides, dilation, padding, groups, use_bias):
    x, = xs
    (kh, kw), (sh, sw), (dh, dw) = kernel_size, strides, dilation
    xp = ref._pad_nchw(x, kh, kw, sh, sw, dh, dw, padding, 0.0)
    win = ref._windows(xp, kh, kw, sh, sw, dh, dw)  # N, C, OH, OW, kh, kw
    k = p["kernel"]  # O, C/g, kh, kw
    cg, og = x.shape[1] // groups, filters // groups
    dwin, dk = np.empty_like(win), np.empty_like(k)
    for g in range(groups):
        c, o = slice(g * cg, (g + 1) * cg), slice(g * og, (g + 1) * og)
        dk[o] = np.einsum("ncyxij,noyx->ocij", win[:, c], gy[:, o])
        dwin[:, c] = np.einsum("noyx,ocij->ncyxij", gy[:, o], k[o])
    dx = _unpad(_unwindows(dwin, xp.shape, sh, sw, dh, dw), x.shape, kh, kw, sh, sw, dh, dw, padding)
    grads = {"kernel": dk}
    if use_bias:
        grads["bias"] = gy.sum(axis=(0, 2, 3))
    return [dx], grads


def _max_pool2d(xs, p, out, gy, training, pool_size, strides, padding):
    x, = xs
    (kh, kw), (sh, sw) = pool_size, strides
    xp = ref._pad_nchw(x, kh, kw, sh, sw, 1, 1, padding, -np.inf)
    win = ref._windows(xp, kh, kw, sh, sw, 1, 1)
    flat = win.reshape(win.shape[:4] + (kh * kw,))
    # The whole gradient goes to the first maximal element of each window (argmax picks the first).
    first = np.argmax(flat, axis=-1)[..., None] == np.arange(kh * kw)
    dwin = (first * gy[..., None]).reshape(win.shape)
    return [_unpad(_unwindows(dwin, xp.shape, sh, sw, 1, 1), x.shape, kh, kw, sh, sw, 1, 1, padding)], {}


def _avg_pool2d(xs, p, out, gy, training, pool_size, strides, padding):
    x, = xs
    (kh, kw), (sh, sw) = pool_size, strides
    ones = np.ones((1, 1) + x.shape[2:])
    onesp = ref._pad_nchw(ones, kh, kw, sh, sw, 1, 1, padding, 0.0)
    count = ref._windows(onesp, kh, kw, sh, sw, 1, 1).sum(axis=(4, 5))  # real elements per window
    dtotal = gy / count
    dwin = np.broadcast_to(dtotal[..., None, None], dtotal.shape + (kh, kw))
    padded = x.shape[:2] + onesp.shape[2:]
    return [_unpad(_unwindows(dwin, padded, sh, sw, 1, 1), x.shape, kh, kw, sh, sw, 1, 1, padding)], {}


def _global_avg_pool(xs, p, out, gy, training):
    x, = xs
    h, w = x.shape[2:]
    return [np.broadcast_to(gy[:, :, None, None] / (h * w), x.shape).copy()], {}


def _batch_norm(xs, p, out, gy, training, epsilon):
    x, = xs
    axes, shape = _bn_axes(x), _bn_shape(x)
    gamma = p["gamma"].reshape(shape)
    if not training:  # an affine map per channel with fixed statistics
        inv_std = 1.0 / np.sqrt(p["moving_var"].reshape(shape) + epsilon)
        xhat = (x - p["moving_mean"].reshape(shape)) * inv_std
        return [gy * gamma * inv_std], {"gamma": (gy * xhat).sum(axis=axes), "beta": gy.sum(axis=axes)}
    m = x.size // x.shape[1]  # elements per channel
    mu = x.mean(axis=axes, keepdims=True)
    inv_std = 1.0 / np.sqrt(((x - mu) ** 2).mean(axis=axes, keepdims=True) + epsilon)
    xhat = (x - mu) * inv_std
    dxhat = gy * gamma
    # Through xhat, mu and var: dx = inv_std / m * (m dxhat - sum(dxhat) - xhat sum(dxhat xhat)).
    dx = inv_std / m * (m * dxhat - dxhat.sum(axis=axes, keepdims=True)
                        - xhat * (dxhat * xhat).sum(axis=axes, keepdims=True))
    return [dx], {"gamma": (gy * xhat).sum(axis=axes), "beta": gy.sum(axis=axes)}


def _layer_norm(xs, p, out, gy, training, epsilon):
    x, = xs
    d = x.shape[-1]
    mu = x.mean(axis=-1, keepdims=True)
    inv_std = 1.0 / np.sqrt(((x - mu) ** 2).mean(axis=-1, keepdims=True) + epsilon)
    xhat = (x - mu) * inv_std
    dxhat = gy * p["gamma"]
    dx = inv_std / d * (d * dxhat - dxhat.sum(axis=-1, keepdims=True)
                        - xhat * (dxhat * xhat).sum(axis=-1, keepdims=True))
    lead = tuple(range(x.ndim - 1))
    return [dx], {"gamma": (gy * xhat).sum(axis=lead), "beta": gy.sum(axis=lead)}


def _relu(xs, p, out, gy, training):
    return [gy * (xs[0] > 0)], {}


def _gelu(xs, p, out, gy, training, approximate="none"):
    x, = xs
    if approximate == "tanh":  # y = 0.5 x (1 + t), t = tanh(c (x + 0.044715 x^3))
        t = np.tanh(ref.GELU_TANH_C * (x + 0.044715 * x ** 3))
        du = ref.GELU_TANH_C * (1.0 + 3 * 0.044715 * x * x)
        return [gy * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du)], {}
    # d/dx [0.5 x (1 + erf(x / sqrt 2))] = Phi(x) + x phi(x)
    cdf = 0.5 * (1.0 + ref._erf(x / math.sqrt(2.0)))
    pdf = np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
    return [gy * (cdf + x * pdf)], {}


def _sigmoid(xs, p, out, gy, training):
    return [gy * out * (1.0 - out)], {}


def _tanh(xs, p, out, gy, training):
    return [gy * (1.0 - out * out)], {}


def _softmax_back(out, gy, axis):
    return out * (gy - (gy * out).sum(axis=axis, keepdims=True))


def _softmax(xs, p, out, gy, training, axis):
    return [_softmax_back(out, gy, axis)], {}


def _add(xs, p, out, gy, training):
    return [_unbroadcast(gy, x.shape) for x in xs], {}


def _multiply(xs, p, out, gy, training):
    x, y = xs
    return [_unbroadcast(gy * y, x.shape), _unbroadcast(gy * x, y.shape)], {}


def _matmul(xs, p, out, gy, training, transpose_b):
    x, y = xs
    b = np.swapaxes(y, -1, -2) if transpose_b else y  # (..., K, P)
    dx = _unbroadcast(gy @ np.swapaxes(b, -1, -2), x.shape)
    db = _unbroadcast(np.swapaxes(x, -1, -2) @ gy, b.shape)
    return [dx, np.swapaxes(db, -1, -2) if transpose_b else db], {}


def _reshape(xs, p, out, gy, training, shape):
    return [gy.reshape(xs[0].shape)], {}


def _flatten(xs, p, out, gy, training):
    return [gy.reshape(xs[0].shape)], {}


def _transpose(xs, p, out, gy, training, perm):
    return [gy.transpose(np.argsort(perm))], {}


def _concat(xs, p, out, gy, training, axis):
    cuts = np.cumsum([x.shape[axis] for x in xs])[:-1]
    return np.split(gy, cuts, axis=axis), {}


def _mean(xs, p, out, gy, training, axis, keepdims):
    x, = xs
    axes = tuple(sorted(a % x.ndim for a in axis))
    count = math.prod(x.shape[a] for a in axes)
    g = gy if keepdims else np.expand_dims(gy, axes)
    return [np.broadcast_to(g / count, x.shape).copy()], {}


def _embedding(xs, p, out, gy, training, vocab_size, dim):
    ids, = xs
    table = np.zeros_like(p["table"])
    np.add.at(table, ids, gy)  # a repeated id accumulates its rows
    return [None], {"table": table}


def _attention(xs, p, out, gy, training, num_heads, causal, num_kv_heads=None, use_bias=True, rope=None):
    x, = xs
    n, l, d = x.shape
    hd = d // num_heads
    hkv = num_kv_heads or num_heads  # grouped kv heads, optional biases, rope

    def heads(t):  # N, L, D -> N, h, L, hd
        return t.reshape(n, l, num_heads, hd).transpose(0, 2, 1, 3)

    def merge(t):  # N, h, L, hd -> N, L, h*hd
        return t.transpose(0, 2, 1, 3).reshape(n, l, -1)

    # Forward again, keeping the intermediates (k, v already repeated to H heads, q and k rotated).
    q, k, v = ref.attention_qkv(x, p, num_heads, num_kv_heads, rope)
    scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(hd)
    if causal:
        scores = np.where(np.tril(np.ones((l, l), dtype=bool)), scores, -np.inf)
    probs = ref.softmax(scores, None, axis=-1)  # masked entries are exactly 0
    merged = merge(probs @ v)

    grads = {"wo": np.einsum("nld,nle->de", merged, gy)}
    if "bo" in p:
        grads["bo"] = gy.sum(axis=(0, 1))
    dctx = heads(gy @ p["wo"].T)
    dprobs = dctx @ v.transpose(0, 1, 3, 2)
    dv = probs.transpose(0, 1, 3, 2) @ dctx
    dscores = _softmax_back(probs, dprobs, -1) / math.sqrt(hd)  # zero where masked, as probs is
    dq = dscores @ k
    dk = dscores.transpose(0, 1, 3, 2) @ q
    dk, dv = (_attention_unrepeat(t, hkv) for t in (dk, dv))  # a kv head gets its whole group's gradient
    if rope is not None:  # the rotation is orthogonal: its vjp is the inverse rotation
        dq, dk = ref.apply_rope(dq, rope, inverse=True), ref.apply_rope(dk, rope, inverse=True)
    dx = np.zeros_like(x)
    for c, dt in zip("qkv", (dq, dk, dv)):
        dt = merge(dt)
        grads["w" + c] = np.einsum("nld,nle->de", x, dt)
        if "b" + c in p:
            grads["b" + c] = dt.sum(axis=(0, 1))
        dx += dt @ p["w" + c].T
    return [dx], grads


def _sig(z):
    return 1.0 / (1.0 + np.exp(-z))


def _lstm(xs, p, out, gy, training, units, return_sequences):
    x, = xs
    n, t, _ = x.shape
    u = units
    kernel, rec = p["kernel"], p["recurrent_kernel"]
    # Forward again, keeping each step's state and gates.
    h, c = np.zeros((n, u)), np.zeros((n, u))
    steps = []
    for s in range(t):
        z = x[:, s] @ kernel + h @ rec + p["bias"]
        i, f, g, o = _sig(z[:, :u]), _sig(z[:, u:2 * u]), np.tanh(z[:, 2 * u:3 * u]), _sig(z[:, 3 * u:])
        c_new = f * c + i * g
        tc = np.tanh(c_new)
        steps.append((h, c, i, f, g, o, tc))
        h, c = o * tc, c_new

    # Backpropagation through time.
    dkernel, drec, dbias = np.zeros_like(kernel), np.zeros_like(rec), np.zeros_like(p["bias"])
    dx = np.zeros_like(x)
    dh_next, dc_next = np.zeros((n, u)), np.zeros((n, u))
    for s in reversed(range(t)):
        h_prev, c_prev, i, f, g, o, tc = steps[s]
        dh = dh_next + (gy[:, s] if return_sequences else (gy if s == t - 1 else 0.0))
        dc = dc_next + dh * o * (1.0 - tc * tc)
        dz = np.concatenate([dc * g * i * (1.0 - i),  # i
                             dc * c_prev * f * (1.0 - f),  # f
                             dc * i * (1.0 - g * g),  # g
                             dh * tc * o * (1.0 - o)], axis=1)  # o
        dkernel += x[:, s].T @ dz
        drec += h_prev.T @ dz
        dbias += dz.sum(axis=0)
        dx[:, s] = dz @ kernel.T
        dh_next, dc_next = dz @ rec.T, dc * f
    return [dx], {"kernel": dkernel, "recurrent_kernel": drec, "bias": dbias}


def _rms_norm(xs, p, out, gy, training, epsilon):
    x, = xs
    d = x.shape[-1]
    inv = 1.0 / np.sqrt((x * x).mean(axis=-1, keepdims=True) + epsilon)
    dxhat = gy * p["gamma"]
    # y = x inv gamma, d inv / dx_j = -inv^3 x_j / D
    dx = inv * dxhat - x * inv ** 3 / d * (dxhat * x).sum(axis=-1, keepdims=True)
    return [dx], {"gamma": (gy * x * inv).sum(axis=tuple(range(x.ndim - 1)))}


def _silu(xs, p, out, gy, training):
    s = _sig(xs[0])
    return [gy * (s + xs[0] * s * (1.0 - s))], {}


def _relu6(xs, p, out, gy, training):
    return [gy * ((xs[0] > 0) & (xs[0] < 6))], {}


def _hard_sigmoid(xs, p, out, gy, training):
    return [gy * ((xs[0] > -3) & (xs[0] < 3)) / 6.0], {}


def _hard_swish(xs, p, out, gy, training):
    x, = xs
    return [gy * (ref.hard_sigmoid(x, None) + x * ((x > -3) & (x < 3)) / 6.0)], {}


def _slice(xs, p, out, gy, training, axis, start, stop, step):
    x, = xs
    dx = np.zeros_like(x)
    idx = [slice(None)] * x.ndim
    idx[axis % x.ndim] = slice(start, stop, step)
    dx[tuple(idx)] = gy
    return [dx], {}


def _pad(xs, p, out, gy, training, pads, value):
    x, = xs
    idx = (slice(None),) + tuple(slice(b, b + n) for (b, _), n in zip(pads, x.shape[1:]))
    return [gy[idx].copy()], {}


def _position_embedding(xs, p, out, gy, training):
    return [gy.copy()], {"table": gy.sum(axis=0)}


def _class_token(xs, p, out, gy, training):
    return [gy[:, 1:].copy()], {"token": gy[:, 0].sum(axis=0)}


def _dropout(xs, p, out, gy, training, rate):
    return [gy.copy()], {}  # identity in both modes (reference.dropout)

def _attention_unrepeat(g, hkv):
    """The vjp of repeating each of hkv kv heads for its contiguous group: (N, H, L, hd) -> (N, Hkv, L, hd)."""
    n, h, l, hd = g.shape
    return g.reshape(n, hkv, h // hkv, l, hd).sum(axis=2)


def _gru(xs, p, out, gy, training, units, return_sequences, reset_after):
    x, = xs
    n, t, _ = x.shape
    u = units
    kernel, rec = p["kernel"], p["recurrent_kernel"]
    rbias = p["recurrent_bias"] if reset_after else np.zeros(3 * u)
    # Forward again, keeping each step's state and gates (blocks z, r, n).
    h = np.zeros((n, u))
    steps = []
    for s in range(t):
        xz = x[:, s] @ kernel + p["bias"]
        hz = h @ rec + rbias
        z, r = _sig(xz[:, :u] + hz[:, :u]), _sig(xz[:, u:2 * u] + hz[:, u:2 * u])
        if reset_after:
            cand = np.tanh(xz[:, 2 * u:] + r * hz[:, 2 * u:])
        else:
            cand = np.tanh(xz[:, 2 * u:] + (r * h) @ rec[:, 2 * u:])
        steps.append((h, z, r, cand, hz))
        h = (1.0 - z) * cand + z * h

    # Backpropagation through time.
    dkernel, drec, dbias, drbias = (np.zeros_like(kernel), np.zeros_like(rec), np.zeros(3 * u), np.zeros(3 * u))
    dx = np.zeros_like(x)
    dh_next = np.zeros((n, u))
    for s in reversed(range(t)):
        h_prev, z, r, cand, hz = steps[s]
        dh = dh_next + (gy[:, s] if return_sequences else (gy if s == t - 1 else 0.0))
        dan = dh * (1.0 - z) * (1.0 - cand * cand)  # through n's pre-activation
        daz = dh * (h_prev - cand) * z * (1.0 - z)
        dh_prev = dh * z
        if reset_after:
            dar = dan * hz[:, 2 * u:] * r * (1.0 - r)
            dhz = np.concatenate([daz, dar, dan * r], axis=1)
            drec += h_prev.T @ dhz
            drbias += dhz.sum(axis=0)
            dh_prev += dhz @ rec.T
        else:
            drh = dan @ rec[:, 2 * u:].T  # d(r * h)
            dar = drh * h_prev * r * (1.0 - r)
            dzr = np.concatenate([daz, dar], axis=1)
            drec[:, :2 * u] += h_prev.T @ dzr
            drec[:, 2 * u:] += (r * h_prev).T @ dan
            dh_prev += dzr @ rec[:, :2 * u].T + drh * r
        dxz = np.concatenate([daz, dar, dan], axis=1)
        dkernel += x[:, s].T @ dxz
        dbias += dxz.sum(axis=0)
        dx[:, s] = dxz @ kernel.T
        dh_next = dh_prev
    grads = {"kernel": dkernel, "recurrent_kernel": drec, "bias": dbias}
    if reset_after:
        grads["recurrent_bias"] = drbias
    return [dx], grads

def _conv2d_transpose(xs, p, out, gy, training, filters, kernel_size, strides, padding, output_padding,
                      use_bias):
    """The transposed conv's VJP is a stride-s conv: undo the crop/pad, then read full[i*s + a, j*s + b]."""
    x, = xs
    (kh, kw), (sh, sw) = kernel_size, strides
    n, _, h, w = x.shape
    (t, b), (l, r) = ref._conv_t_crops(x.shape, kernel_size, strides, padding, output_padding)
    gfull = ref._crop_or_pad(gy, ((-t, -b), (-l, -r)))  # the adjoint of crop is pad, and of pad crop
    k = p["kernel"]  # C, O, kh, kw
    dx, dk = np.zeros_like(x), np.zeros_like(k)
    for a in range(kh):
        for c in range(kw):
            g = gfull[:, :, a:a + (h - 1) * sh + 1:sh, c:c + (w - 1) * sw + 1:sw]  # N, O, H, W
            dx += np.einsum("noij,co->ncij", g, k[:, :, a, c])
            dk[:, :, a, c] = np.einsum("noij,ncij->co", g, x)
    grads = {"kernel": dk}
    if use_bias:
        grads["bias"] = gy.sum(axis=(0, 2, 3))
    return [dx], grads


def _resize(xs, p, out, gy, training, mode, scale, align_corners):
    """The transpose of the per-axis interpolation matrices."""
    x, = xs
    mh = ref.resize_matrix(x.shape[2], scale[0], mode, align_corners)
    mw = ref.resize_matrix(x.shape[3], scale[1], mode, align_corners)
    return [np.einsum("yh,ncyx,xw->nchw", mh, gy, mw)], {}



VJP_FUNCS = {
    "dense": _dense, "conv2d": _conv2d, "max_pool2d": _max_pool2d, "avg_pool2d": _avg_pool2d,
    "global_avg_pool": _global_avg_pool, "batch_norm": _batch_norm, "layer_norm": _layer_norm, "relu": _relu,
    "gelu": _gelu, "sigmoid": _sigmoid, "tanh": _tanh, "softmax": _softmax, "add": _add, "multiply": _multiply,
    "matmul": _matmul, "reshape": _reshape, "flatten": _flatten, "transpose": _transpose, "concat": _concat,
    "mean": _mean, "embedding": _embedding, "attention": _attention, "lstm": _lstm,
    "rms_norm": _rms_norm, "silu": _silu, "relu6": _relu6, "hard_sigmoid": _hard_sigmoid,
    "hard_swish": _hard_swish, "slice": _slice, "pad": _pad, "position_embedding": _position_embedding,
    "class_token": _class_token, "dropout": _dropout,
    "gru": _gru,
    "conv2d_transpose": _conv2d_transpose, "resize": _resize,
}


def vjp(op: str, inputs: list[np.ndarray], params: dict, attrs: dict, out: np.ndarray, gout: np.ndarray,
        training: bool = True) -> tuple[list[np.ndarray | None], dict[str, np.ndarray]]:
    """One op's backward: gradients for each input (None for integer inputs) and for its trainable params.

    Args:
        inputs: the op's inputs (integer ids stay integer), params: its parameters, attrs: its attributes
            with defaults filled, out: its forward output (same training flag), gout: dLoss/dout.
    Returns:
        (dLoss/dinput per input, {trainable param: dLoss/dparam}), float64, in canonical shapes.
    """
    xs = [_as_float64(np.asarray(a)) for a in inputs]
    p = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    gout = np.asarray(gout, dtype=np.float64)
    if gout.shape != out.shape:
        raise ValueError(f"{op}: gradient of shape {list(gout.shape)} for an output of shape {list(out.shape)}")
    dxs, dps = VJP_FUNCS[op](xs, p, np.asarray(out, dtype=np.float64), gout, training, **attrs)
    dxs = [None if x.dtype.kind in "iu" or dx is None else np.asarray(dx, dtype=np.float64)
           for x, dx in zip(xs, dxs)]
    return dxs, {k: np.asarray(dps[k], dtype=np.float64) for k in trainable_names(op, p)}


def backprop(workload, weights, values, seeds: Mapping[str, np.ndarray], training: bool = True):
    """Reverse-mode pass returning (value name -> dLoss/dvalue for every float value reached, the param
    gradients of :func:`backward`)."""
    dvals = {}
    for name, g in seeds.items():
        g = np.array(g, dtype=np.float64)  # a copy: accumulation below must not write into the caller's seed
        if g.shape != np.shape(values[name]):
            raise ValueError(f"seed for {name} has shape {list(g.shape)}, the value {list(np.shape(values[name]))}")
        dvals[name] = g
    dparams = {node.name: {k: np.zeros(np.shape(weights[node.name][k]))
                           for k in trainable_names(node.op, weights[node.name])}
               for node in workload.nodes if weights.get(node.name)}
    for node in reversed(workload.nodes):  # reverse topological order: every consumer is done first
        gout = dvals.get(node.name)
        if gout is None:
            continue  # the loss does not depend on this node
        dxs, dps = vjp(node.op, [values[s] for s in node.inputs], weights.get(node.name, {}), node.attrs,
                       values[node.name], gout, training)
        for src, dx in zip(node.inputs, dxs):
            if dx is not None:
                dvals[src] = dvals[src] + dx if src in dvals else dx
        for k, g in dps.items():
            dparams[node.name][k] += g
    return dvals, {n: ps for n, ps in dparams.items() if ps}


def backward(workload, weights, values, seeds: dict[str, np.ndarray],
             training: bool = True) -> dict[str, dict[str, np.ndarray]]:
    """Reverse-mode pass. values: from train_forward (same training flag). seeds: name -> dLoss/dvalue for
    one or more values (normally the output the loss reads). Returns node name -> param name -> gradient
    (float64, canonical shape) for every trainable parameter of every node that has params (all params
    except batch_norm's moving_mean/moving_var); parameters that receive no gradient get zeros."""
    return backprop(workload, weights, values, seeds, training)[1]
