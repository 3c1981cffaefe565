"""Keras 3's op table: ``OPS[op](keras, g, node, vals) -> Val``, one function per op of suite/ops.py.

Each function adds one workload node to the functional ``keras.Model`` being built, from Keras layers and
``keras.ops`` (the same code on every backend):

* ``keras``: the keras module;
* ``g``: the :class:`Graph` being built (layout tracker, static shapes, backend, the layers placed so far);
* ``node``: the workload node (``node.attrs``, ``node.name``, ``node.inputs``);
* ``vals``: the node's inputs as :class:`~suite.targets.common.nhwc.Val` (symbolic tensor + NHWC flag).

A layer with parameters is called through :meth:`Graph.layer`, which records it with its node; its weights
are set once the model exists (:mod:`suite.targets.keras.weights` maps them).

Layout: images are channels_last. Values carry an NHWC flag while the graph is walked
(:mod:`suite.targets.common.nhwc`, as in the TensorFlow target): conv, pooling and 4-D batch norm produce
NHWC; element-wise ops keep the layout; softmax and concat remap their axis; everything that reads axis
order (flatten, reshape, transpose, matmul, mean, dense, layer norm) first transposes back to canonical
NCHW. Rank-4 float inputs are made NHWC in ``prepare`` and NHWC outputs NCHW in ``to_numpy``, outside
anything timed (:mod:`suite.targets.keras.model`).

``padding="same"`` is Keras' own; it was checked against the canonical TensorFlow SAME rule (odd/even
sizes, stride 2, even kernels) on all three backends in Keras 3.15 and agrees for conv and max pool (the
torch backend pads asymmetrically itself), so no explicit ZeroPadding2D is needed there. One deviation: on
the torch backend an asymmetric SAME AveragePooling2D pads with replicated edge values and counts them
(e.g. 3x3/2 on 8x8: errors ~0.4); for that case only, torch gets ZeroPadding2D + valid pooling + a constant
rescale (see :func:`avg_pool2d`). Keras refuses strides > 1 together with dilation > 1; that case is a
stride-1 dilated conv over the input explicitly ZeroPadding2D-ed by the SAME rule, subsampled by the
stride (same numbers; see :func:`conv2d`).

Importing this module never imports keras or a backend.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from suite.ops import same_padding
from suite.targets.common.mappings import is_depthwise
from suite.targets.common.nhwc import Tracker, Val

UNSUPPORTED: dict[str, str] = {}  # every op of workloads/README.md maps to a Keras layer or keras.ops


@dataclass
class Graph:
    """What the op functions share while one functional model is built.

    Attributes:
        tracker: the NHWC layout tracker (built on keras.ops' transpose / softmax / add / ...).
        shapes: tensor name -> static canonical shape (the cell is fixed).
        backend: the Keras backend of this worker (``jax``, ``tensorflow`` or ``torch``).
        placed: (layer, node) of every layer with parameters, in graph order.
    """

    tracker: Tracker
    shapes: Mapping
    backend: str
    placed: list = field(default_factory=list)

    def layer(self, lyr, node, x, **call):
        """Calls a layer with parameters on ``x`` and records it with its node (calling builds the layer,
        so its weights exist from here on).

        Its initialisers are replaced first by zeros made in NumPy (:func:`_placeholder_initializers`): every
        weight is overwritten by ``set_weights`` once the model exists, and Keras' random initialisers
        cost one XLA compilation per weight shape on the jax backend (4-5 s of a transformer block's
        build, none of it the model's)."""
        _placeholder_initializers(lyr)
        y = lyr(x, **call)
        self.placed.append((lyr, node))
        return y


def _placeholder_initializers(lyr) -> None:
    """Points every ``*_initializer`` attribute of an unbuilt layer (and of its recurrent ``cell``) at
    :class:`Zeros in NumPy <_numpy_zeros>`: no backend kernel, no compilation. Only for weights that
    ``set_weights`` overwrites before anything runs."""
    from keras import initializers

    zeros = _numpy_zeros(initializers.Initializer)
    for obj in (lyr, getattr(lyr, "cell", None)):
        if obj is None or getattr(obj, "built", False):
            continue
        for name, value in list(vars(obj).items()):
            if name.endswith("_initializer") and isinstance(value, initializers.Initializer):
                setattr(obj, name, zeros)


_ZEROS: dict = {}


def _numpy_zeros(base):
    """An instance of a ``keras.initializers.Initializer`` subclass whose call returns ``np.zeros``.
    A subclass (not a plain function) because attention layers clone their initialisers for their
    sub-layers through ``get_config`` / ``from_config``."""
    if base not in _ZEROS:
        class NumpyZeros(base):
            def __call__(self, shape, dtype=None):
                return np.zeros(shape, dtype=np.dtype(dtype or "float32"))

        _ZEROS[base] = NumpyZeros()
    return _ZEROS[base]


def conv2d(keras, g, node, vals):
    """Conv2D (grouped through ``groups``), or DepthwiseConv2D when groups == C; see the module docstring
    for strides > 1 with dilation > 1."""
    L = keras.layers
    a, x = node.attrs, g.tracker.nhwc(vals[0])
    s, d, k = a["strides"], a["dilation"], a["kernel_size"]
    in_shape = g.shapes[node.inputs[0]]
    common = dict(strides=s, padding=a["padding"], dilation_rate=d, use_bias=a["use_bias"],
                  data_format="channels_last")
    step = None
    if max(s) > 1 and max(d) > 1:  # Keras refuses this pair: stride-1 conv, then subsample
        if a["padding"] == "same":
            _, h, w = in_shape[1:]
            pads = [same_padding(n, k[i], s[i], d[i])[1:] for i, n in enumerate((h, w))]
            x = L.ZeroPadding2D(pads, data_format="channels_last")(x)
        common.update(strides=1, padding="valid")
        step = s
    if is_depthwise(a, in_shape[1]):
        lyr = L.DepthwiseConv2D(k, depth_multiplier=a["filters"] // a["groups"], **common)
    else:
        lyr = L.Conv2D(a["filters"], k, groups=a["groups"], **common)
    y = g.layer(lyr, node, x)
    return Val(y[:, ::step[0], ::step[1], :] if step else y, True)


def max_pool2d(keras, g, node, vals):
    a = node.attrs
    pool = keras.layers.MaxPooling2D(a["pool_size"], a["strides"], a["padding"], data_format="channels_last")
    return Val(pool(g.tracker.nhwc(vals[0])), True)


def avg_pool2d(keras, g, node, vals):
    L = keras.layers
    a, x = node.attrs, g.tracker.nhwc(vals[0])
    k, s = a["pool_size"], a["strides"]
    spatial = g.shapes[node.inputs[0]][2:]
    pads = [same_padding(n, k[i], s[i], 1)[1:] for i, n in enumerate(spatial)]
    if a["padding"] == "same" and g.backend == "torch" and any(p0 != p1 for p0, p1 in pads):
        # Keras 3.15's torch backend pads an asymmetric SAME pool with *replicated* edge values and
        # averages them in (right for max, wrong for mean). Workaround, torch only: zero-pad, mean over
        # the full window, rescale by window size / real positions (a shape-only constant).
        y = L.AveragePooling2D(k, s, "valid", data_format="channels_last")(
            L.ZeroPadding2D(pads, data_format="channels_last")(x))
        real = [np.array([min(o * s[i] - pads[i][0] + k[i], n) - max(o * s[i] - pads[i][0], 0)
                          for o in range(y.shape[1 + i])]) for i, n in enumerate(spatial)]
        scale = (k[0] * k[1] / np.outer(real[0], real[1])).astype(np.float32)
        return Val(keras.ops.multiply(y, scale[None, :, :, None]), True)
    return Val(L.AveragePooling2D(k, s, a["padding"], data_format="channels_last")(x), True)


def global_avg_pool(keras, g, node, vals):
    return Val(keras.layers.GlobalAveragePooling2D(data_format="channels_last")(g.tracker.nhwc(vals[0])))


def batch_norm(keras, g, node, vals):
    """Channels last in (N, C) and NHWC alike."""
    v = vals[0]
    x = g.tracker.nhwc(v) if len(v.t.shape) == 4 else v.t
    y = g.layer(keras.layers.BatchNormalization(axis=-1, epsilon=node.attrs["epsilon"]), node, x, training=False)
    return Val(y, len(y.shape) == 4)


def _elementwise(name):
    """An activation keeps its operand's layout."""
    def op(keras, g, node, vals):
        o = keras.ops
        fn = {"relu": o.relu, "sigmoid": o.sigmoid, "tanh": o.tanh,
              # keras.ops.gelu defaults to the tanh approximation: the attribute is always passed
              "gelu": lambda t: o.gelu(t, approximate=node.attrs["approximate"] == "tanh")}[name]
        return Val(fn(vals[0].t), vals[0].nhwc)

    op.__name__ = op.__qualname__ = name
    return op


relu, gelu, sigmoid, tanh = (_elementwise(n) for n in ("relu", "gelu", "sigmoid", "tanh"))


def _layout_free(keras, g, node, vals):
    """softmax / add / multiply / concat / transpose in the inputs' own layout (common.nhwc.Tracker)."""
    return g.tracker.layout_free(node.op, vals, node.attrs)


softmax = add = multiply = concat = transpose = _layout_free


def dense(keras, g, node, vals):
    a = node.attrs
    return Val(g.layer(keras.layers.Dense(a["units"], use_bias=a["use_bias"]), node, g.tracker.canon(vals[0])))


def layer_norm(keras, g, node, vals):
    lyr = keras.layers.LayerNormalization(axis=-1, epsilon=node.attrs["epsilon"])
    return Val(g.layer(lyr, node, g.tracker.canon(vals[0])))


def matmul(keras, g, node, vals):
    o, c = keras.ops, g.tracker.canon
    x, b = c(vals[0]), c(vals[1])
    return Val(o.matmul(x, o.swapaxes(b, -1, -2) if node.attrs["transpose_b"] else b))


def reshape(keras, g, node, vals):
    return Val(keras.ops.reshape(g.tracker.canon(vals[0]), g.shapes[node.name]))  # static shapes: the cell is fixed


flatten = reshape


def mean(keras, g, node, vals):
    a = node.attrs
    return Val(keras.ops.mean(g.tracker.canon(vals[0]), axis=tuple(a["axis"]), keepdims=a["keepdims"]))


def embedding(keras, g, node, vals):
    a = node.attrs
    return Val(g.layer(keras.layers.Embedding(a["vocab_size"], a["dim"]), node, g.tracker.canon(vals[0])))


def attention(keras, g, node, vals):
    """MultiHeadAttention(key_dim = D/h), self-attention; causal through ``use_causal_mask``. Grouped kv
    heads or rope: GroupedQueryAttention (:func:`grouped_attention`)."""
    a, x = node.attrs, g.tracker.canon(vals[0])
    d = g.shapes[node.inputs[0]][-1]
    if attention_kv_heads(a) != a["num_heads"] or a.get("rope") is not None:
        return grouped_attention(keras, g, node, x, d)
    mha = keras.layers.MultiHeadAttention(a["num_heads"], key_dim=d // a["num_heads"],
                                          use_bias=a.get("use_bias", True))
    return Val(g.layer(mha, node, x, value=x, use_causal_mask=a["causal"], training=False))


def lstm(keras, g, node, vals):
    a = node.attrs
    lyr = keras.layers.LSTM(a["units"], return_sequences=a["return_sequences"])
    return Val(g.layer(lyr, node, g.tracker.canon(vals[0]), training=False))


OPS = {"dense": dense, "conv2d": conv2d, "max_pool2d": max_pool2d, "avg_pool2d": avg_pool2d,
       "global_avg_pool": global_avg_pool, "batch_norm": batch_norm, "layer_norm": layer_norm,
       "relu": relu, "gelu": gelu, "sigmoid": sigmoid, "tanh": tanh, "softmax": softmax, "add": add,
       "multiply": multiply, "matmul": matmul, "reshape": reshape, "flatten": flatten, "transpose": transpose,
       "concat": concat, "mean": mean, "embedding": embedding, "attention": attention, "lstm": lstm}

def rms_norm(keras, g, node, vals):
    lyr = keras.layers.RMSNormalization(axis=-1, epsilon=node.attrs["epsilon"])
    return Val(g.layer(lyr, node, g.tracker.canon(vals[0])))


def _act(name):
    """keras.ops' activation of that name (Keras 3's hard_sigmoid is relu6(x + 3) / 6, not Keras 2's
    0.2 x + 0.5); keeps the operand's layout."""
    def op(keras, g, node, vals):
        return Val(getattr(keras.ops, name)(vals[0].t), vals[0].nhwc)

    op.__name__ = op.__qualname__ = name
    return op


silu, relu6, hard_sigmoid, hard_swish = (_act(n) for n in ("silu", "relu6", "hard_sigmoid", "hard_swish"))


def _axis_in_layout(v, axis):
    from suite.targets.common.nhwc import TO_NHWC_AXIS

    axis %= len(v.t.shape)
    return TO_NHWC_AXIS[axis] if v.nhwc else axis


def slice_(keras, g, node, vals):
    """Python slicing of one axis of the symbolic tensor (bounds resolved, non-negative), in its own layout."""
    from suite.ops import slice_range

    a, v = node.attrs, vals[0]
    ax = _axis_in_layout(v, a["axis"])
    begin, _, count = slice_range(v.t.shape[ax], a["start"], a["stop"], a["step"])
    idx = (slice(None),) * ax + (slice(begin, begin + (count - 1) * a["step"] + 1, a["step"]),)
    return Val(v.t[idx], v.nhwc)


def pad(keras, g, node, vals):
    """keras.ops.pad (constant), in the input's own layout (the canonical pairs permuted for NHWC)."""
    a, v = node.attrs, vals[0]
    pads = [(0, 0), *a["pads"]]
    if v.nhwc:
        pads = [pads[i] for i in (0, 2, 3, 1)]
    return Val(keras.ops.pad(v.t, pads, mode="constant", constant_values=a["value"]), v.nhwc)


_TOKEN_LAYERS: dict = {}  # keras module -> (PositionEmbedding, ClassToken), defined once per worker


def _token_layers(keras):
    """Keras has no core layer for these: keras_hub's PositionEmbedding (an ``embeddings`` weight (L, D)
    added to the input) and its ViT class token (``class_token`` (1, 1, D), repeated over the batch and
    concatenated first), written out."""
    if keras in _TOKEN_LAYERS:
        return _TOKEN_LAYERS[keras]

    class PositionEmbedding(keras.layers.Layer):
        def build(self, input_shape):
            self.embeddings = self.add_weight(shape=tuple(input_shape[1:]), name="embeddings")

        def call(self, x):
            return x + self.embeddings

    class ClassToken(keras.layers.Layer):
        def build(self, input_shape):
            self.class_token = self.add_weight(shape=(1, 1, input_shape[-1]), name="class_token")

        def call(self, x):
            token = keras.ops.repeat(self.class_token, keras.ops.shape(x)[0], axis=0)
            return keras.ops.concatenate([token, x], axis=1)

    return _TOKEN_LAYERS.setdefault(keras, (PositionEmbedding, ClassToken))


def position_embedding(keras, g, node, vals):
    return Val(g.layer(_token_layers(keras)[0](), node, g.tracker.canon(vals[0])))


def class_token(keras, g, node, vals):
    return Val(g.layer(_token_layers(keras)[1](), node, g.tracker.canon(vals[0])))


def dropout(keras, g, node, vals):
    """Identity. keras.layers.Dropout is not used: a functional model called with training=True (the train
    step) passes that flag to every layer, overriding a training=False given when it was placed, and
    verification compares deterministic computations (workloads/README.md)."""
    return Val(keras.layers.Identity()(vals[0].t), vals[0].nhwc)


OPS.update({"rms_norm": rms_norm, "silu": silu, "relu6": relu6, "hard_sigmoid": hard_sigmoid,
            "hard_swish": hard_swish, "slice": slice_, "pad": pad, "position_embedding": position_embedding,
            "class_token": class_token, "dropout": dropout})
from suite.ops import attention_kv_heads  # noqa: E402


def _rope(keras, x, rope):
    """Rotary embedding of x (N, L, h, hd) in keras.ops: pair i of the first r dims turns by
    pos * base^(-2i/r). half: pairs (i, i + r/2) (GPT-NeoX, Hugging Face Llama, keras_hub's RotaryEmbedding);
    interleaved: pairs (2i, 2i + 1) (GPT-J, Meta's Llama)."""
    o = keras.ops
    length, hd = x.shape[1], x.shape[-1]
    r = rope.dims(hd)
    inv_freq = 1.0 / o.power(rope.base, o.arange(0, r, 2, dtype="float32") / r)
    freqs = o.einsum("l,f->lf", o.arange(length, dtype="float32"), inv_freq)  # L, r/2
    cos, sin = o.expand_dims(o.cos(freqs), 1), o.expand_dims(o.sin(freqs), 1)  # broadcast over heads
    if rope.style == "half":
        x1, x2 = x[..., :r // 2], x[..., r // 2:r]
        return o.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin, x[..., r:]], axis=-1)
    x1, x2 = x[..., 0:r:2], x[..., 1:r:2]
    rot = o.reshape(o.stack([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1), (*x.shape[:-1], r))
    return o.concatenate([rot, x[..., r:]], axis=-1)


_ROPE_GQA: dict = {}  # keras module -> the GroupedQueryAttention subclass with rope, defined once per worker


def _rope_gqa(keras):
    """GroupedQueryAttention has no rotary embedding; its ``_compute_attention(query, key, value, ...)`` gets
    the projected (N, L, H, hd) heads (kv already repeated per group: rotating after the repeat is the same
    rotation), so the subclass rotates q and k there and hands over to the layer's own attention."""
    if keras not in _ROPE_GQA:
        class RopeGroupedQueryAttention(keras.layers.GroupQueryAttention):
            def __init__(self, rope, **kw):
                super().__init__(**kw)
                self.rope = rope

            def _compute_attention(self, query, key, value, attention_mask=None, training=None, **kw):
                return super()._compute_attention(_rope(keras, query, self.rope), _rope(keras, key, self.rope),
                                                  value, attention_mask=attention_mask, training=training, **kw)

        _ROPE_GQA[keras] = RopeGroupedQueryAttention
    return _ROPE_GQA[keras]


def grouped_attention(keras, g, node, x, d):
    """GroupedQueryAttention (exported as ``keras.layers.GroupQueryAttention``) with head_dim = D/h and
    num_key_value_heads = Hkv: kv heads repeated per group of H / Hkv
    contiguous query heads (ops.repeat), biases with use_bias; rope through :func:`_rope_gqa`."""
    a = node.attrs
    kw = dict(head_dim=d // a["num_heads"], num_query_heads=a["num_heads"],
              num_key_value_heads=attention_kv_heads(a), use_bias=a.get("use_bias", True))
    lyr = (keras.layers.GroupQueryAttention(**kw) if a.get("rope") is None
           else _rope_gqa(keras)(a["rope"], **kw))
    return Val(g.layer(lyr, node, x, value=x, use_causal_mask=a["causal"], training=False))


def gru(keras, g, node, vals):
    a = node.attrs
    # Keras' defaults (tanh, sigmoid recurrent activation, no dropout, unroll=False) are the canonical GRU;
    # use_cudnn="auto" only picks the fused cuDNN kernel on GPU, which computes the same reset_after form.
    lyr = keras.layers.GRU(a["units"], return_sequences=a["return_sequences"], reset_after=a["reset_after"])
    return Val(g.layer(lyr, node, g.tracker.canon(vals[0]), training=False))


OPS.update({"gru": gru})
def conv2d_transpose(keras, g, node, vals):
    """Conv2DTranspose, kernel (kh, kw, filters, C). ``valid`` always passes ``output_padding`` (0 too):
    Keras' default (None) output size is ``H * s + max(k - s, 0)``, not the full ``(H - 1) * s + k`` when
    k < s. ``same`` leaves it None: ``H * s`` with TensorFlow's crop (total // 2 first)."""
    a = node.attrs
    op = a["output_padding"] if a["padding"] == "valid" else None
    lyr = keras.layers.Conv2DTranspose(a["filters"], a["kernel_size"], strides=a["strides"], padding=a["padding"],
                                       output_padding=op, use_bias=a["use_bias"], data_format="channels_last")
    return Val(g.layer(lyr, node, g.tracker.nhwc(vals[0])), True)


def resize(keras, g, node, vals):
    """UpSampling2D (nearest repeats: floor(dst / s); bilinear is keras.ops.image.resize, half-pixel
    centres on every backend). Keras has no align_corners: two takes and a lerp per axis in keras.ops."""
    a, x = node.attrs, g.tracker.nhwc(vals[0])
    if not a["align_corners"]:
        return Val(keras.layers.UpSampling2D(a["scale"], data_format="channels_last",
                                             interpolation=a["mode"])(x), True)
    from suite.targets.common.resize import bilinear_taps

    _, _, h, w = g.shapes[node.inputs[0]]
    for axis, size, s in ((1, h, a["scale"][0]), (2, w, a["scale"][1])):
        lo, hi, f = bilinear_taps(size, s, True)
        f = f.reshape((1, -1, 1, 1) if axis == 1 else (1, 1, -1, 1))
        ops = keras.ops
        x = ops.add(ops.multiply(ops.take(x, lo, axis=axis), 1.0 - f), ops.multiply(ops.take(x, hi, axis=axis), f))
    return Val(x, True)


OPS.update({"conv2d_transpose": conv2d_transpose, "resize": resize})
