"""The op catalogue as data: attributes, parameter shapes, shape inference and FLOPs per op.

Shape functions take concrete canonical shapes and raise :class:`ShapeError` with a sentence a user
can act on; ``suite.spec`` adds the file and field path. No framework imports here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

REQUIRED = object()


class ShapeError(ValueError):
    """A shape that cannot flow through an op; ``field`` names the attribute to blame, if any."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


# ---- attribute validators: return the normalised value or raise ValueError(expected ...) ----

def _pos_int(v):
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise ValueError(f"expected a positive integer, got {v!r}")
    return v


def _int(v):
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(f"expected an integer, got {v!r}")
    return v


def _bool(v):
    if not isinstance(v, bool):
        raise ValueError(f"expected true or false, got {v!r}")
    return v


def _pos_float(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
        raise ValueError(f"expected a positive number, got {v!r}")
    return float(v)


def _pair(v):
    if isinstance(v, list) and len(v) == 2:
        return (_pos_int(v[0]), _pos_int(v[1]))
    try:
        n = _pos_int(v)
    except ValueError:
        raise ValueError(f"expected a positive integer or a list of two, got {v!r}") from None
    return (n, n)


def _padding(v):
    if v not in ("same", "valid"):
        raise ValueError(f"expected 'same' or 'valid', got {v!r}")
    return v


def _int_list(v):
    if not isinstance(v, list) or not v or not all(isinstance(i, int) and not isinstance(i, bool) for i in v):
        raise ValueError(f"expected a non-empty list of integers, got {v!r}")
    return tuple(v)


def _axes(v):
    return _int_list(v) if isinstance(v, list) else (_int(v),)


@dataclass(frozen=True)
class Attr:
    name: str
    check: Callable[[Any], Any]
    default: Any = REQUIRED


@dataclass(frozen=True)
class OpDef:
    """One op: arity, attributes, parameter shapes, output shape and FLOPs (multiply-add = 2)."""

    name: str
    arity: int | None  # None: two or more
    attrs: tuple[Attr, ...]
    out_shape: Callable[[list[tuple], dict], tuple]
    params: Callable[[list[tuple], dict], dict[str, tuple]] = lambda s, a: {}
    flops: Callable[[list[tuple], tuple, dict], int] = lambda s, o, a: 0
    int_input: bool = False


def _prod(xs) -> int:
    return math.prod(int(x) for x in xs)


def _rank(shape, ranks, what):
    if len(shape) not in ranks:
        raise ShapeError(f"expected a rank-{' or '.join(map(str, ranks))} input ({what}), got shape {list(shape)}")


def _axis(axis, rank, allow_batch=False):
    a = axis + rank if axis < 0 else axis
    if not 0 <= a < rank:
        raise ShapeError(f"axis {axis} is out of range for rank {rank}", "axis")
    if a == 0 and not allow_batch:
        raise ShapeError("the batch axis (0) cannot be used here", "axis")
    return a


def same_padding(size: int, k: int, s: int, d: int) -> tuple[int, int, int]:
    """TensorFlow's SAME rule: returns (out, pad_before, pad_after)."""
    out = -(-size // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
    return out, total // 2, total - total // 2


def window_out(size: int, k: int, s: int, d: int, padding: str) -> int:
    if padding == "same":
        return same_padding(size, k, s, d)[0]
    eff = (k - 1) * d + 1
    if eff > size:
        raise ShapeError(f"window of effective size {eff} does not fit an input of size {size} with padding 'valid'",
                         "kernel_size")
    return (size - eff) // s + 1


# ---- shape functions ----

def _dense_shape(s, a):
    if len(s[0]) < 2:
        raise ShapeError(f"expected an input of rank >= 2, got shape {list(s[0])}")
    return s[0][:-1] + (a["units"],)


def _dense_params(s, a):
    p = {"kernel": (s[0][-1], a["units"])}
    if a["use_bias"]:
        p["bias"] = (a["units"],)
    return p


def _conv_shape(s, a):
    _rank(s[0], (4,), "N, C, H, W")
    n, c, h, w = s[0]
    g = a["groups"]
    if c % g:
        raise ShapeError(f"input channels {c} are not divisible by groups {g}", "groups")
    if a["filters"] % g:
        raise ShapeError(f"filters {a['filters']} are not divisible by groups {g}", "groups")
    (kh, kw), (sh, sw), (dh, dw) = a["kernel_size"], a["strides"], a["dilation"]
    return (n, a["filters"], window_out(h, kh, sh, dh, a["padding"]), window_out(w, kw, sw, dw, a["padding"]))


def _conv_params(s, a):
    kh, kw = a["kernel_size"]
    p = {"kernel": (a["filters"], s[0][1] // a["groups"], kh, kw)}
    if a["use_bias"]:
        p["bias"] = (a["filters"],)
    return p


def _conv_flops(s, o, a):
    kh, kw = a["kernel_size"]
    return 2 * _prod(o) * (s[0][1] // a["groups"]) * kh * kw


def _pool_attrs(a):
    if a.get("strides") is None:
        a["strides"] = a["pool_size"]
    return a


def _pool_shape(s, a):
    _rank(s[0], (4,), "N, C, H, W")
    _pool_attrs(a)
    n, c, h, w = s[0]
    (kh, kw), (sh, sw) = a["pool_size"], a["strides"]
    try:
        return (n, c, window_out(h, kh, sh, 1, a["padding"]), window_out(w, kw, sw, 1, a["padding"]))
    except ShapeError as e:
        raise ShapeError(str(e), "pool_size") from None


def _gap_shape(s, a):
    _rank(s[0], (4,), "N, C, H, W")
    return s[0][:2]


def _bn_shape(s, a):
    _rank(s[0], (2, 4), "N, C or N, C, H, W")
    return s[0]


def _broadcast(s, a):
    out = []
    for dims in _zip_right(s[0], s[1]):
        x, y = dims
        if x != y and 1 not in (x, y):
            raise ShapeError(f"shapes {list(s[0])} and {list(s[1])} do not broadcast")
        out.append(max(x, y))
    return tuple(out)


def _zip_right(x, y):
    n = max(len(x), len(y))
    x = (1,) * (n - len(x)) + tuple(x)
    y = (1,) * (n - len(y)) + tuple(y)
    return list(zip(x, y))


def _matmul_shape(s, a):
    x, y = s
    if len(x) < 2 or len(y) < 2:
        raise ShapeError(f"matmul needs inputs of rank >= 2, got {list(x)} and {list(y)}")
    if a["transpose_b"]:
        y = y[:-2] + (y[-1], y[-2])
    if x[-1] != y[-2]:
        raise ShapeError(f"inner dimensions differ: {list(x)} @ {list(y)}")
    batch = _broadcast([x[:-2], y[:-2]], a)
    return batch + (x[-2], y[-1])


def _reshape_shape(s, a):
    dims = list(a["shape"])
    if dims.count(-1) > 1 or any(d == 0 or d < -1 for d in dims):
        raise ShapeError(f"expected positive sizes with at most one -1, got {dims}", "shape")
    total = _prod(s[0][1:])
    known = _prod(d for d in dims if d != -1)
    if -1 in dims:
        if total % known:
            raise ShapeError(f"cannot reshape {list(s[0][1:])} ({total} elements) into {dims}", "shape")
        dims[dims.index(-1)] = total // known
    if _prod(dims) != total:
        raise ShapeError(f"cannot reshape {list(s[0][1:])} ({total} elements) into {list(a['shape'])}", "shape")
    return (s[0][0],) + tuple(dims)


def _transpose_shape(s, a):
    perm = a["perm"]
    if sorted(perm) != list(range(len(s[0]))):
        raise ShapeError(f"perm {list(perm)} is not a permutation of the {len(s[0])} axes", "perm")
    if perm[0] != 0:
        raise ShapeError("perm[0] must be 0: the batch axis stays first", "perm")
    return tuple(s[0][p] for p in perm)


def _concat_shape(s, a):
    rank = len(s[0])
    ax = _axis(a["axis"], rank)
    for other in s[1:]:
        if len(other) != rank or any(other[i] != s[0][i] for i in range(rank) if i != ax):
            raise ShapeError(f"inputs {[list(x) for x in s]} differ outside axis {a['axis']}")
    return s[0][:ax] + (sum(x[ax] for x in s),) + s[0][ax + 1:]


def _mean_shape(s, a):
    rank = len(s[0])
    axes = sorted({_axis(x, rank) for x in a["axis"]})
    if len(axes) != len(a["axis"]):  # NumPy (the reference) rejects a repeated axis, e.g. [1, -2] on rank 3
        raise ShapeError(f"axis {list(a['axis'])} names the same axis twice", "axis")
    if a["keepdims"]:
        return tuple(1 if i in axes else d for i, d in enumerate(s[0]))
    return tuple(d for i, d in enumerate(s[0]) if i not in axes)


def _attention_shape(s, a):
    _rank(s[0], (3,), "N, L, D")
    if s[0][2] % a["num_heads"]:
        raise ShapeError(f"model width {s[0][2]} is not divisible by num_heads {a['num_heads']}", "num_heads")
    if a["num_heads"] % attention_kv_heads(a):
        raise ShapeError(f"num_kv_heads {a['num_kv_heads']} does not divide num_heads {a['num_heads']}",
                         "num_kv_heads")
    if a.get("rope") is not None and a["rope"].dims(s[0][2] // a["num_heads"]) < 2:
        raise ShapeError(f"rope.fraction {a['rope'].fraction} of head size {s[0][2] // a['num_heads']} rotates "
                         "no pair of dims", "rope")
    return s[0]


def _attention_params(s, a):
    d = s[0][2]
    kv = d // a["num_heads"] * attention_kv_heads(a)  # Hkv * hd
    p = {"wq": (d, d), "wk": (d, kv), "wv": (d, kv), "wo": (d, d)}
    if a.get("use_bias", True):
        p.update({"bq": (d,), "bk": (kv,), "bv": (kv,), "bo": (d,)})
    return p


def _attention_flops(s, o, a):
    n, l, d = s[0]
    kv = d // a["num_heads"] * attention_kv_heads(a)
    return 2 * n * l * d * (2 * d + 2 * kv) + 2 * 2 * n * l * l * d


def _lstm_shape(s, a):
    _rank(s[0], (3,), "N, T, F")
    n, t, _ = s[0]
    return (n, t, a["units"]) if a["return_sequences"] else (n, a["units"])


def _lstm_params(s, a):
    u = a["units"]
    return {"kernel": (s[0][2], 4 * u), "recurrent_kernel": (u, 4 * u), "bias": (4 * u,)}


def _rnn_flops(gates: int):
    """Flops of a recurrent layer with ``gates`` gate blocks: per step, (F + U) x gates*U multiply-adds."""

    def flops(s, o, a):
        n, t, f = s[0]
        return 2 * n * t * (f + a["units"]) * gates * a["units"]

    return flops


# ---- activations, norms, shape and embedding ops: shape, parameter and flop helpers

def _gelu_approximate(v):
    if v not in ("none", "tanh"):
        raise ValueError(f"expected 'none' (exact erf form) or 'tanh', got {v!r}")
    return v


def _rate(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1:
        raise ValueError(f"expected a number in [0, 1), got {v!r}")
    return float(v)


def _number(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ValueError(f"expected a finite number, got {v!r}")
    return float(v)


def _int_or_null(v):
    return None if v is None else _int(v)


def _pad_pairs(v):
    ok = isinstance(v, list) and v and all(
        isinstance(p, list) and len(p) == 2 and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0
                                                    for i in p) for p in v)
    if not ok:
        raise ValueError(f"expected a list of [before, after] pairs of non-negative integers, got {v!r}")
    return tuple((p[0], p[1]) for p in v)


def slice_range(size: int, start: int, stop: int | None, step: int) -> tuple[int, int, int]:
    """Python's slicing of one axis of ``size``: (first index, end, count) after negative / out-of-range
    start and stop are resolved (``slice(start, stop, step).indices(size)``)."""
    begin, end, step = slice(start, stop, step).indices(size)
    return begin, end, len(range(begin, end, step))


def _slice_shape(s, a):
    ax = _axis(a["axis"], len(s[0]))
    _, _, count = slice_range(s[0][ax], a["start"], a["stop"], a["step"])
    if count == 0:
        raise ShapeError(f"slice {a['start']}:{a['stop']}:{a['step']} of an axis of size {s[0][ax]} is empty",
                         "start")
    return s[0][:ax] + (count,) + s[0][ax + 1:]


def _pad_shape(s, a):
    if len(a["pads"]) != len(s[0]) - 1:
        raise ShapeError(f"pads has {len(a['pads'])} pairs; an input of shape {list(s[0])} needs one per non-batch "
                         f"axis ({len(s[0]) - 1})", "pads")
    return (s[0][0],) + tuple(d + b + e for d, (b, e) in zip(s[0][1:], a["pads"]))


def _seq_shape(s, a):
    _rank(s[0], (3,), "N, L, D")
    return s[0]


def _class_token_shape(s, a):
    _rank(s[0], (3,), "N, L, D")
    n, l, d = s[0]
    return (n, l + 1, d)

# ---- attention: num_kv_heads, use_bias, rope: shape, parameter and flop helpers

ROPE_STYLES = ("half", "interleaved")


@dataclass(frozen=True)
class Rope:
    """A normalised ``rope`` attribute of attention (workloads/README.md): rotary position embeddings."""

    base: float = 10000.0
    style: str = "half"  # half (GPT-NeoX, Hugging Face Llama) | interleaved (GPT-J, Meta's original)
    fraction: float = 1.0

    def dims(self, head_dim: int) -> int:
        """Rotated dims per head: the largest even number <= head_dim * fraction."""
        return rope_dims(head_dim, self.fraction)


def rope_dims(head_dim: int, fraction: float) -> int:
    return int(head_dim * fraction + 1e-9) // 2 * 2


def _rope(v):
    if not isinstance(v, dict) or set(v) - {"base", "style", "fraction"}:
        raise ValueError(f"expected a mapping with style (half | interleaved) and optional base, fraction, got {v!r}")
    if v.get("style") not in ROPE_STYLES:
        raise ValueError(f"expected rope.style 'half' or 'interleaved', got {v.get('style')!r}")
    base = v.get("base", 10000.0)
    if isinstance(base, bool) or not isinstance(base, (int, float)) or not base > 1:
        raise ValueError(f"expected rope.base a number > 1, got {base!r}")
    fraction = v.get("fraction", 1.0)
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise ValueError(f"expected rope.fraction a number in (0, 1], got {fraction!r}")
    return Rope(float(base), v["style"], float(fraction))


def attention_kv_heads(a) -> int:
    """num_kv_heads of an attention node's attributes (absent or None: num_heads, plain multi-head)."""
    return a.get("num_kv_heads") or a["num_heads"]


# ---- gru: shape, parameter and flop helpers

def _gru_params(s, a):
    u = a["units"]
    p = {"kernel": (s[0][2], 3 * u), "recurrent_kernel": (u, 3 * u), "bias": (3 * u,)}
    if a["reset_after"]:
        p["recurrent_bias"] = (3 * u,)
    return p


# ---- conv2d_transpose, resize: shape, parameter and flop helpers

def _resize_mode(v):
    if v not in ("nearest", "bilinear"):
        raise ValueError(f"expected 'nearest' or 'bilinear', got {v!r}")
    return v


def conv_transpose_out(size: int, k: int, s: int, padding: str, output_padding: int) -> tuple[int, int, int]:
    """Output size and (crop_before, crop_after) of one transposed-convolution axis.

    The full (uncropped) output has ``(size - 1) * s + k`` positions. ``valid``: all of them plus
    ``output_padding`` zero rows at the end (negative crop_after). ``same`` (TensorFlow/Keras): ``size * s``,
    crop ``max(k - s, 0)`` with ``// 2`` at the start; if ``k < s`` the full output is padded at the end with
    ``s - k`` zero rows instead (crop_after negative), as TensorFlow does.
    """
    full = (size - 1) * s + k
    if padding == "valid":
        return full + output_padding, 0, -output_padding
    out = size * s
    total = full - out  # k - s: crop when positive, pad at the end when negative
    before = max(total, 0) // 2
    return out, before, total - before


def _conv_t_shape(s, a):
    _rank(s[0], (4,), "N, C, H, W")
    n, c, h, w = s[0]
    op = a["output_padding"]
    if any(op) and a["padding"] != "valid":
        raise ShapeError("output_padding is only allowed with padding 'valid'", "output_padding")
    for p, st in zip(op, a["strides"]):
        if p >= st:
            raise ShapeError(f"output_padding {p} must be smaller than the stride {st}", "output_padding")
    (kh, kw), (sh, sw), (ph, pw) = a["kernel_size"], a["strides"], op
    return (n, a["filters"], conv_transpose_out(h, kh, sh, a["padding"], ph)[0],
            conv_transpose_out(w, kw, sw, a["padding"], pw)[0])


def _conv_t_params(s, a):
    kh, kw = a["kernel_size"]
    p = {"kernel": (s[0][1], a["filters"], kh, kw)}  # IOHW, as torch's ConvTranspose2d
    if a["use_bias"]:
        p["bias"] = (a["filters"],)
    return p


def _conv_t_flops(s, o, a):
    kh, kw = a["kernel_size"]
    return 2 * _prod(s[0]) * a["filters"] * kh * kw


def _nonneg_pair(v):
    if isinstance(v, list) and len(v) == 2 and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0
                                                   for i in v):
        return (v[0], v[1])
    if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
        return (v, v)
    raise ValueError(f"expected a non-negative integer or a list of two, got {v!r}")


def _resize_shape(s, a):
    _rank(s[0], (4,), "N, C, H, W")
    if a["align_corners"] and a["mode"] != "bilinear":
        raise ShapeError("align_corners is only meaningful with mode 'bilinear'", "align_corners")
    n, c, h, w = s[0]
    sh, sw = a["scale"]
    return (n, c, h * sh, w * sw)



def _elementwise(name, flops_per=1, arity=1, shape=lambda s, a: s[0], attrs=()):
    return OpDef(name, arity, attrs, shape, flops=lambda s, o, a: flops_per * _prod(o))


OPS: dict[str, OpDef] = {op.name: op for op in [
    OpDef("dense", 1, (Attr("units", _pos_int), Attr("use_bias", _bool, True)), _dense_shape, _dense_params,
          lambda s, o, a: 2 * _prod(o) * s[0][-1]),
    OpDef("conv2d", 1, (Attr("filters", _pos_int), Attr("kernel_size", _pair), Attr("strides", _pair, (1, 1)),
                        Attr("dilation", _pair, (1, 1)), Attr("padding", _padding, "valid"),
                        Attr("groups", _pos_int, 1), Attr("use_bias", _bool, True)),
          _conv_shape, _conv_params, _conv_flops),
    OpDef("max_pool2d", 1, (Attr("pool_size", _pair), Attr("strides", _pair, None), Attr("padding", _padding, "valid")),
          _pool_shape, flops=lambda s, o, a: _prod(o) * _prod(a["pool_size"])),
    OpDef("avg_pool2d", 1, (Attr("pool_size", _pair), Attr("strides", _pair, None), Attr("padding", _padding, "valid")),
          _pool_shape, flops=lambda s, o, a: _prod(o) * _prod(a["pool_size"])),
    OpDef("global_avg_pool", 1, (), _gap_shape, flops=lambda s, o, a: _prod(s[0])),
    OpDef("batch_norm", 1, (Attr("epsilon", _pos_float, 1e-5),), _bn_shape,
          lambda s, a: {k: (s[0][1],) for k in ("gamma", "beta", "moving_mean", "moving_var")},
          lambda s, o, a: 2 * _prod(o)),
    OpDef("layer_norm", 1, (Attr("epsilon", _pos_float, 1e-5),), lambda s, a: s[0],
          lambda s, a: {"gamma": (s[0][-1],), "beta": (s[0][-1],)}, lambda s, o, a: 8 * _prod(o)),
    _elementwise("relu"),
    _elementwise("gelu", 8, attrs=(Attr("approximate", _gelu_approximate, "none"),)),
    _elementwise("sigmoid", 4),
    _elementwise("tanh", 4),
    _elementwise("softmax", 5, attrs=(Attr("axis", _int, -1),),
                 shape=lambda s, a: (_axis(a["axis"], len(s[0]), allow_batch=False), s[0])[1]),
    _elementwise("add", 1, 2, _broadcast),
    _elementwise("multiply", 1, 2, _broadcast),
    OpDef("matmul", 2, (Attr("transpose_b", _bool, False),), _matmul_shape,
          flops=lambda s, o, a: 2 * _prod(o) * s[0][-1]),
    OpDef("reshape", 1, (Attr("shape", _int_list),), _reshape_shape),
    OpDef("flatten", 1, (), lambda s, a: (s[0][0], _prod(s[0][1:]))),
    OpDef("transpose", 1, (Attr("perm", _int_list),), _transpose_shape),
    OpDef("concat", None, (Attr("axis", _int),), _concat_shape),
    OpDef("mean", 1, (Attr("axis", _axes), Attr("keepdims", _bool, False)), _mean_shape,
          flops=lambda s, o, a: _prod(s[0])),
    OpDef("embedding", 1, (Attr("vocab_size", _pos_int), Attr("dim", _pos_int)), lambda s, a: s[0] + (a["dim"],),
          lambda s, a: {"table": (a["vocab_size"], a["dim"])}, int_input=True),
    OpDef("attention", 1, (Attr("num_heads", _pos_int), Attr("causal", _bool, False),
                           Attr("num_kv_heads", _pos_int, None), Attr("use_bias", _bool, True),
                           Attr("rope", _rope, None)), _attention_shape,
          _attention_params, _attention_flops),
    OpDef("lstm", 1, (Attr("units", _pos_int), Attr("return_sequences", _bool, False)), _lstm_shape,
          _lstm_params, _rnn_flops(4)),
    OpDef("rms_norm", 1, (Attr("epsilon", _pos_float, 1e-6),), lambda s, a: s[0],
          lambda s, a: {"gamma": (s[0][-1],)}, lambda s, o, a: 4 * _prod(o)),
    _elementwise("silu", 5),
    _elementwise("relu6", 2),
    _elementwise("hard_sigmoid", 3),
    _elementwise("hard_swish", 4),
    OpDef("slice", 1, (Attr("axis", _int), Attr("start", _int, 0), Attr("stop", _int_or_null, None),
                       Attr("step", _pos_int, 1)), _slice_shape),
    OpDef("pad", 1, (Attr("pads", _pad_pairs), Attr("value", _number, 0.0)), _pad_shape),
    OpDef("position_embedding", 1, (), _seq_shape, lambda s, a: {"table": s[0][1:]},
          lambda s, o, a: _prod(o)),
    OpDef("class_token", 1, (), _class_token_shape, lambda s, a: {"token": (s[0][2],)}),
    _elementwise("dropout", 0, attrs=(Attr("rate", _rate, 0.5),)),
    OpDef("gru", 1, (Attr("units", _pos_int), Attr("return_sequences", _bool, False),
                     Attr("reset_after", _bool, True)), _lstm_shape, _gru_params, _rnn_flops(3)),
    OpDef("conv2d_transpose", 1, (Attr("filters", _pos_int), Attr("kernel_size", _pair),
                                  Attr("strides", _pair, (1, 1)), Attr("padding", _padding, "valid"),
                                  Attr("output_padding", _nonneg_pair, (0, 0)), Attr("use_bias", _bool, True)),
          _conv_t_shape, _conv_t_params, _conv_t_flops),
    OpDef("resize", 1, (Attr("mode", _resize_mode), Attr("scale", _pair), Attr("align_corners", _bool, False)),
          _resize_shape, flops=lambda s, o, a: (4 if a["mode"] == "bilinear" else 1) * _prod(o)),
]}
