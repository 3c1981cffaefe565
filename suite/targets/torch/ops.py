"""torch's op table: ``OPS[op](t, a, in_shapes, w) -> nn.Module``, one function per op of suite/ops.py.

Each function builds the module of one workload node, called with the node's input tensors:

* ``t``: the torch namespace from :func:`native` (``torch``, ``nn``, ``F`` and ``Fn``);
* ``a``: the node's attributes;
* ``in_shapes``: the canonical (NCHW) shapes of the node's inputs;
* ``w``: the node's parameters already in torch's layout (:mod:`suite.targets.torch.weights`), keyed by
  parameter or buffer name of the native module; empty for ops without parameters.

Native modules where torch has one (Linear, Conv2d, BatchNorm, LayerNorm, Embedding, MultiheadAttention,
LSTM; RMSNorm, SiLU, ReLU6, Hardsigmoid, Hardswish and GELU with its ``approximate`` passed), ``torch.nn.functional``
for the rest; learned position tables and class tokens are parameters of a function module, as in
torchvision's ViT. TensorFlow-style ``same`` padding is asymmetric, so it is an
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
    return t.nn.GELU(approximate=a["approximate"])  # "none" (erf, torch's default) or "tanh": always passed


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
    """nn.MultiheadAttention for plain multi-head attention with biases; otherwise (grouped kv heads, no
    biases, rope) explicit projections around F.scaled_dot_product_attention (:func:`attention_sdpa`)."""
    if not packed_attention(a):
        return attention_sdpa(t, a, in_shapes, w)
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

def _with_params(t, fn, **shapes):
    """A function module with trainable parameters of the given native shapes (filled by :func:`load`)."""
    module = t.Fn(fn)
    for name, shape in shapes.items():
        module.register_parameter(name, t.nn.Parameter(t.torch.empty(shape)))
    return module


def rms_norm(t, a, in_shapes, w):
    return load(t.nn.RMSNorm(in_shapes[0][-1], eps=a["epsilon"]), w)


def silu(t, a, in_shapes, w):
    return t.nn.SiLU()


def relu6(t, a, in_shapes, w):
    return t.nn.ReLU6()


def hard_sigmoid(t, a, in_shapes, w):
    return t.nn.Hardsigmoid()  # relu6(x + 3) / 6


def hard_swish(t, a, in_shapes, w):
    return t.nn.Hardswish()


def slice_(t, a, in_shapes, w):
    """Basic indexing with the slice resolved at build time (non-negative bounds: a plain ONNX Slice)."""
    from suite.ops import slice_range

    shape = in_shapes[0]
    ax = a["axis"] % len(shape)
    begin, _, count = slice_range(shape[ax], a["start"], a["stop"], a["step"])
    idx = (slice(None),) * ax + (slice(begin, begin + (count - 1) * a["step"] + 1, a["step"]),)
    return t.Fn(lambda m, x: x[idx])


def pad(t, a, in_shapes, w):
    flat = tuple(n for pair in reversed(a["pads"]) for n in pair)  # F.pad: last axis first
    value = a["value"]
    return t.Fn(lambda m, x: t.F.pad(x, flat, mode="constant", value=value))


def position_embedding(t, a, in_shapes, w):
    """torchvision's ViT encoder: ``x + pos_embedding`` with a (1, L, D) parameter."""
    _, length, d = in_shapes[0]
    return load(_with_params(t, lambda m, x: x + m.pos_embedding, pos_embedding=(1, length, d)), w)


def class_token(t, a, in_shapes, w):
    """torchvision's ViT: a (1, 1, D) ``class_token`` expanded over the batch and concatenated first."""
    d = in_shapes[0][-1]
    return load(_with_params(t, lambda m, x: t.torch.cat([m.class_token.expand(x.shape[0], -1, -1), x], dim=1),
                             class_token=(1, 1, d)), w)


def dropout(t, a, in_shapes, w):
    """F.dropout with training=False, fixed: the module's train() (train-mode verification) must not turn
    it on (workloads/README.md: dropout is off when verifying)."""
    rate = a["rate"]
    return t.Fn(lambda m, x: t.F.dropout(x, rate, training=False))


OPS.update({"rms_norm": rms_norm, "silu": silu, "relu6": relu6, "hard_sigmoid": hard_sigmoid,
            "hard_swish": hard_swish, "slice": slice_, "pad": pad, "position_embedding": position_embedding,
            "class_token": class_token, "dropout": dropout})
from suite.ops import attention_kv_heads  # noqa: E402


def packed_attention(a) -> bool:
    """Whether an attention node is nn.MultiheadAttention (packed in_proj): as many kv heads as query heads,
    biases, no rope. Shared with weights.py, which maps the weights to the matching module."""
    return attention_kv_heads(a) == a["num_heads"] and a.get("use_bias", True) and a.get("rope") is None


def _rope_half(torch, x, cos, sin):
    """GPT-NeoX / Hugging Face Llama: dims (i, i + r/2) form pair i; cos, sin are (L, r/2)."""
    h = cos.shape[-1]
    x1, x2 = x[..., :h], x[..., h:2 * h]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin, x[..., 2 * h:]], dim=-1)


def _rope_interleaved(torch, x, cos, sin):
    """GPT-J / Meta's original Llama: dims (2i, 2i + 1) form pair i; cos, sin are (L, r/2)."""
    h = cos.shape[-1]
    x1, x2 = x[..., 0:2 * h:2], x[..., 1:2 * h:2]
    rot = torch.stack([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1).flatten(-2)
    return torch.cat([rot, x[..., 2 * h:]], dim=-1)


ROPE = {"half": _rope_half, "interleaved": _rope_interleaved}  # rope.style -> rotation of q and k


def _rope_tables(torch, length, head_dim, rope):
    """cos, sin (L, r/2) as Hugging Face computes them: inv_freq = 1 / base^(2i/r), angle = pos * inv_freq."""
    r = rope.dims(head_dim)
    inv_freq = 1.0 / (rope.base ** (torch.arange(0, r, 2, dtype=torch.int64).float() / r))
    freqs = torch.outer(torch.arange(length, dtype=torch.float32), inv_freq)
    return freqs.cos(), freqs.sin()


def attention_sdpa(t, a, in_shapes, w):
    """q, k, v, o as nn.Linear (k, v project to Hkv heads), rope on q and k, each kv head repeated for its
    group of H / Hkv contiguous query heads (repeat_interleave, Hugging Face's repeat_kv), then
    F.scaled_dot_product_attention (scale 1/sqrt(hd), ``is_causal`` for the causal mask)."""
    torch, F = t.torch, t.F
    length, d = in_shapes[0][1], in_shapes[0][-1]
    h, hkv, causal, rope = a["num_heads"], attention_kv_heads(a), a["causal"], a.get("rope")
    hd, groups = d // h, h // hkv
    bias = a.get("use_bias", True)
    layers = {"q": t.nn.Linear(d, d, bias=bias), "k": t.nn.Linear(d, hkv * hd, bias=bias),
              "v": t.nn.Linear(d, hkv * hd, bias=bias), "o": t.nn.Linear(d, d, bias=bias)}
    rotate = ROPE[rope.style] if rope is not None else None  # looked up now, at build time
    buffers = dict(zip(("cos", "sin"), _rope_tables(torch, length, hd, rope))) if rope is not None else {}

    def forward(m, x):
        q, k, v = (getattr(m, c)(x).unflatten(-1, (-1, hd)).transpose(1, 2) for c in "qkv")  # N, heads, L, hd
        if rotate is not None:
            q, k = rotate(torch, q, m.cos, m.sin), rotate(torch, k, m.cos, m.sin)
        if groups > 1:
            k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        return m.o(out.transpose(1, 2).flatten(2))

    return load(_attach(t.Fn(forward, **buffers), **layers), w)


@functools.lru_cache(maxsize=None)
def _gru_no_reset_after():
    """A GRU with the reset gate applied before the recurrent matmul (reset_after=false, the original
    Cho et al. form), which nn.GRU cannot express. Same parameter names and layout as nn.GRU (gate rows
    r, z, n; no second bias), and a loop over time in forward."""
    import torch

    class GRUResetBefore(torch.nn.Module):
        def __init__(self, input_size, hidden_size):
            super().__init__()
            self.hidden_size = hidden_size
            self.weight_ih_l0 = torch.nn.Parameter(torch.empty(3 * hidden_size, input_size))
            self.weight_hh_l0 = torch.nn.Parameter(torch.empty(3 * hidden_size, hidden_size))
            self.bias_ih_l0 = torch.nn.Parameter(torch.empty(3 * hidden_size))

        def forward(self, x):  # (N, T, F) -> (all h_t (N, T, U), h_T (N, U))
            u = self.hidden_size
            xs = torch.nn.functional.linear(x, self.weight_ih_l0, self.bias_ih_l0)
            w_rz, w_n = self.weight_hh_l0[:2 * u], self.weight_hh_l0[2 * u:]
            h = x.new_zeros(x.shape[0], u)
            seq = []
            for step in range(x.shape[1]):
                x_r, x_z, x_n = xs[:, step].chunk(3, dim=-1)
                h_r, h_z = (h @ w_rz.T).chunk(2, dim=-1)
                r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
                n = torch.tanh(x_n + (r * h) @ w_n.T)
                h = (1 - z) * n + z * h
                seq.append(h)
            return torch.stack(seq, dim=1), h

    return GRUResetBefore


def gru(t, a, in_shapes, w):
    if a["reset_after"]:
        gru = load(t.nn.GRU(in_shapes[0][-1], a["units"], batch_first=True), w)
        last = lambda m, x: m.gru(x)[1][0]  # h_n of the single layer  # noqa: E731
    else:
        gru = load(_gru_no_reset_after()(in_shapes[0][-1], a["units"]), w)
        last = lambda m, x: m.gru(x)[1]  # noqa: E731
    if a["return_sequences"]:
        return _attach(t.Fn(lambda m, x: m.gru(x)[0]), gru=gru)
    return _attach(t.Fn(last), gru=gru)


OPS.update({"gru": gru})
def _conv_t_axis(size, k, s, padding, output_padding):
    """ConvTranspose2d's (padding, output_padding) for one axis, plus rows still to crop at the end.

    torch crops ``padding`` rows at *both* ends (then adds ``output_padding`` zero rows at the end), so
    TensorFlow's asymmetric SAME crop (``total // 2`` first, the rest last) is ``padding = total // 2`` and,
    when ``total = k - s`` is odd, one more row cropped at the end by an explicit negative pad (torch's
    ``padding = 1, output_padding = 1`` would crop the *first* row instead: the trap). ``valid`` with
    ``output_padding``, and SAME with ``k < s`` (which pads ``s - k`` rows instead of cropping), are
    torch's ``output_padding`` (always < stride there).
    """
    from suite.ops import conv_transpose_out

    _, before, after = conv_transpose_out(size, k, s, padding, output_padding)
    if after < 0:  # zero rows (plus bias) at the end
        return before, -after, 0
    return before, 0, after - before


def conv2d_transpose(t, a, in_shapes, w):
    """nn.ConvTranspose2d (IOHW weight, the canonical layout), padding and output_padding per
    :func:`_conv_t_axis`."""
    (_, c, h, wd) = in_shapes[0]
    axes = [_conv_t_axis(size, k, s, a["padding"], op)
            for size, k, s, op in zip((h, wd), a["kernel_size"], a["strides"], a["output_padding"])]
    conv = load(t.nn.ConvTranspose2d(c, a["filters"], a["kernel_size"], stride=a["strides"],
                                     padding=tuple(ax[0] for ax in axes), output_padding=tuple(ax[1] for ax in axes),
                                     bias=a["use_bias"]), w)
    crop = (0, -axes[1][2], 0, -axes[0][2])  # F.pad (left, right, top, bottom); negative crops
    if not any(crop):
        return conv
    return _attach(t.Fn(lambda m, x: t.F.pad(m.conv(x), crop)), conv=conv)


def resize(t, a, in_shapes, w):
    """F.interpolate with integer scale factors: nearest (src = floor(dst / s)) or bilinear with
    ``align_corners`` passed through (False: half-pixel centres, torch's default)."""
    scale = tuple(float(s) for s in a["scale"])
    if a["mode"] == "nearest":
        return t.Fn(lambda m, x: t.F.interpolate(x, scale_factor=scale, mode="nearest"))
    ac = a["align_corners"]
    return t.Fn(lambda m, x: t.F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=ac))


OPS.update({"conv2d_transpose": conv2d_transpose, "resize": resize})
