"""torch's op table: ``OPS[op](t, a, in_shapes, w) -> nn.Module``, one function per op of suite/ops.py.

Each function builds the module of one workload node, called with the node's input tensors:

* ``t``: the torch namespace from :func:`native` (``torch``, ``nn``, ``F`` and ``Fn``);
* ``a``: the node's attributes;
* ``in_shapes``: the canonical (NCHW) shapes of the node's inputs;
* ``w``: the node's parameters already in torch's layout (:mod:`suite.targets.torch.weights`), keyed by
  parameter or buffer name of the native module; empty for ops without parameters.

Native modules where torch has one (Linear, Conv2d, BatchNorm, LayerNorm, Embedding, MultiheadAttention,
LSTM), ``torch.nn.functional`` for the rest. TensorFlow-style ``same`` padding is asymmetric, so it is an
explicit pad before an unpadded conv/pool (torch's ``padding='same'`` is symmetric, stride 1 only).
Importing this module never imports torch.
"""
from __future__ import annotations

import functools
import types

from suite.ops import same_padding

UNSUPPORTED: dict[str, str] = {}  # every op of workloads/README.md has a torch form


@functools.lru_cache(maxsize=None)
def native() -> types.SimpleNamespace:
    """``torch``, ``torch.nn``, ``torch.nn.functional`` and ``Fn``: a module around a function plus constant
    buffers (moved by ``.to(device)``). Defined on first use so that importing this module never imports torch.
    """
    import torch
    from torch.nn import functional as F

    class _Fn(torch.nn.Module):
        def __init__(self, fn, **buffers):
            super().__init__()
            self.fn = fn
            for k, v in buffers.items():
                self.register_buffer(k, v)

        def forward(self, *xs):
            return self.fn(self, *xs)

    return types.SimpleNamespace(torch=torch, nn=torch.nn, F=F, Fn=_Fn)


def load(module, w):
    """Copies native float32 arrays into the module's parameters and buffers of the same (dotted) names."""
    import torch

    state = dict(module.named_parameters())
    state.update(module.named_buffers())
    for name, value in w.items():
        state[name].data.copy_(torch.from_numpy(value))
    return module


def _attach(fn_module, **children):
    for k, v in children.items():
        fn_module.add_module(k, v)
    return fn_module


def _same_pads(shape, k, s, d, padding):
    """F.pad amounts (left, right, top, bottom) for TensorFlow's rule; None when there is nothing to pad."""
    if padding != "same":
        return None
    _, top, bottom = same_padding(shape[2], k[0], s[0], d[0])
    _, left, right = same_padding(shape[3], k[1], s[1], d[1])
    pads = (left, right, top, bottom)
    return pads if any(pads) else None


def dense(t, a, in_shapes, w):
    return load(t.nn.Linear(in_shapes[0][-1], a["units"], bias=a["use_bias"]), w)


def conv2d(t, a, in_shapes, w):
    conv = load(t.nn.Conv2d(in_shapes[0][1], a["filters"], a["kernel_size"], stride=a["strides"],
                            dilation=a["dilation"], groups=a["groups"], bias=a["use_bias"], padding=0), w)
    pads = _same_pads(in_shapes[0], a["kernel_size"], a["strides"], a["dilation"], a["padding"])
    return t.nn.Sequential(t.nn.ZeroPad2d(pads), conv) if pads else conv


def max_pool2d(t, a, in_shapes, w):
    pool = t.nn.MaxPool2d(a["pool_size"], a["strides"])
    pads = _same_pads(in_shapes[0], a["pool_size"], a["strides"], (1, 1), a["padding"])
    # -inf padding never wins a max, which is TensorFlow's rule.
    return t.nn.Sequential(t.nn.ConstantPad2d(pads, float("-inf")), pool) if pads else pool


def avg_pool2d(t, a, in_shapes, w):
    x_shape = in_shapes[0]
    pads = _same_pads(x_shape, a["pool_size"], a["strides"], (1, 1), a["padding"])
    if not pads:
        return t.nn.AvgPool2d(a["pool_size"], a["strides"])
    k, s, F = a["pool_size"], a["strides"], t.F
    # TensorFlow divides by the number of real (unpadded) elements in each window. torch's
    # count_include_pad=False only knows symmetric padding, so sum windows over the explicitly
    # padded input and divide by a precomputed count of real positions.
    ones = F.pad(t.torch.ones((1, 1) + tuple(x_shape[2:])), pads)
    count = F.avg_pool2d(ones, k, s, divisor_override=1)
    return t.Fn(lambda m, x: F.avg_pool2d(F.pad(x, pads), k, s, divisor_override=1) / m.count, count=count)


def global_avg_pool(t, a, in_shapes, w):
    return t.Fn(lambda m, x: x.mean(dim=(2, 3)))


def batch_norm(t, a, in_shapes, w):
    x_shape = in_shapes[0]
    m = (t.nn.BatchNorm2d if len(x_shape) == 4 else t.nn.BatchNorm1d)(x_shape[1], eps=a["epsilon"])
    return load(m, w).eval()  # inference: use the moving statistics, never the batch's


def layer_norm(t, a, in_shapes, w):
    return load(t.nn.LayerNorm(in_shapes[0][-1], eps=a["epsilon"]), w)


def relu(t, a, in_shapes, w):
    return t.nn.ReLU()


def gelu(t, a, in_shapes, w):
    return t.nn.GELU(approximate="none")  # the exact erf form, as the contract says


def sigmoid(t, a, in_shapes, w):
    return t.nn.Sigmoid()


def tanh(t, a, in_shapes, w):
    return t.nn.Tanh()


def softmax(t, a, in_shapes, w):
    return t.nn.Softmax(dim=a["axis"])


def add(t, a, in_shapes, w):
    return t.Fn(lambda m, x, y: x + y)


def multiply(t, a, in_shapes, w):
    return t.Fn(lambda m, x, y: x * y)


def matmul(t, a, in_shapes, w):
    torch = t.torch
    if a["transpose_b"]:
        return t.Fn(lambda m, x, y: torch.matmul(x, y.transpose(-1, -2)))
    return t.Fn(lambda m, x, y: torch.matmul(x, y))


def reshape(t, a, in_shapes, w):
    shape = tuple(a["shape"])
    return t.Fn(lambda m, x: x.reshape((x.shape[0],) + shape))


def flatten(t, a, in_shapes, w):
    return t.nn.Flatten(1)  # NCHW is canonical, so flatten order already matches


def transpose(t, a, in_shapes, w):
    perm = tuple(a["perm"])
    return t.Fn(lambda m, x: x.permute(perm))


def concat(t, a, in_shapes, w):
    torch, axis = t.torch, a["axis"]
    return t.Fn(lambda m, *xs: torch.cat(xs, dim=axis))


def mean(t, a, in_shapes, w):
    axes, keep = tuple(a["axis"]), a["keepdims"]
    return t.Fn(lambda m, x: x.mean(dim=axes, keepdim=keep))


def embedding(t, a, in_shapes, w):
    return load(t.nn.Embedding(a["vocab_size"], a["dim"]), w)


def attention(t, a, in_shapes, w):
    d, length = in_shapes[0][-1], in_shapes[0][1]
    mha = load(t.nn.MultiheadAttention(d, a["num_heads"], batch_first=True, bias=True), w)
    if a["causal"]:
        # Boolean attn_mask: True marks a position that may NOT be attended (j > i).
        mask = t.torch.triu(t.torch.ones(length, length, dtype=t.torch.bool), diagonal=1)
        fn = t.Fn(lambda m, x: m.mha(x, x, x, attn_mask=m.mask, need_weights=False)[0], mask=mask)
    else:
        fn = t.Fn(lambda m, x: m.mha(x, x, x, need_weights=False)[0])
    return _attach(fn, mha=mha)


def lstm(t, a, in_shapes, w):
    lstm = load(t.nn.LSTM(in_shapes[0][-1], a["units"], batch_first=True), w)
    if a["return_sequences"]:
        return _attach(t.Fn(lambda m, x: m.lstm(x)[0]), lstm=lstm)
    return _attach(t.Fn(lambda m, x: m.lstm(x)[1][0][0]), lstm=lstm)  # h_n of the single layer


OPS = {
    "dense": dense, "conv2d": conv2d, "max_pool2d": max_pool2d, "avg_pool2d": avg_pool2d,
    "global_avg_pool": global_avg_pool, "batch_norm": batch_norm, "layer_norm": layer_norm,
    "relu": relu, "gelu": gelu, "sigmoid": sigmoid, "tanh": tanh, "softmax": softmax,
    "add": add, "multiply": multiply, "matmul": matmul, "reshape": reshape, "flatten": flatten,
    "transpose": transpose, "concat": concat, "mean": mean, "embedding": embedding,
    "attention": attention, "lstm": lstm,
}

# ==== issue 12 [act]: activations, norms, shape and embedding ops (rms_norm, silu, hard_swish, hard_sigmoid, relu6, gelu approximate, slice, pad, position_embedding, class_token, dropout) ====
# ==== issue 12 [attn]: attention: num_kv_heads, use_bias, rope ====
# ==== issue 12 [gru]: gru ====
# ==== issue 12 [spatial]: conv2d_transpose, resize ====
