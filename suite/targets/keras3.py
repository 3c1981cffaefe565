"""Keras 3 target (``keras[jax]``, ``keras[tensorflow]``, ``keras[torch]``): one model definition, three backends.

The workload graph becomes one functional ``keras.Model`` built from Keras layers and ``keras.ops``;
the same code runs on every backend. The backend is fixed per worker process: the scheduler starts
one worker per family (``keras-jax``, ``keras-tensorflow``, ``keras-torch``) and
``suite.profiles.worker_env`` sets ``KERAS_BACKEND`` (and ``KERAS_HOME``, so that Keras writes its
``keras.json`` into the suite's cache rather than ``~/.keras``) before ``keras`` is imported.
:func:`build` refuses to run if the imported backend is not the one the target names.

Compiled the idiomatic way per backend (recorded in ``layout``):

* jax: ``jax.jit`` of ``model.stateless_call(trainable, non_trainable, inputs, training=False)``,
  lowered and compiled ahead of time in build (``compile_s``); variables are jit arguments, not
  constants folded into the executable.
* tensorflow: ``tf.function(model(inputs, training=False))`` with a fixed input signature, traced in
  build (``compile_s``); no XLA (``jit_compile=False``).
* torch: eager ``model(inputs, training=False)`` under ``torch.inference_mode`` (nothing to compile).

Native layouts (canonical -> Keras), the only place they are mapped:

* Images are channels_last. Values carry an NHWC flag while the graph is walked, as in
  ``tf_native``: conv, pooling and 4-D batch norm produce NHWC; element-wise ops keep the layout;
  softmax and concat remap their axis; everything that reads axis order (flatten, reshape,
  transpose, matmul, mean, dense, layer norm) first transposes back to canonical NCHW. Rank-4 float
  inputs are made NHWC in ``prepare`` and NHWC outputs NCHW in ``to_numpy``, outside anything timed.
* Conv2D kernel HWIO (OIHW transposed); grouped conv is ``Conv2D(groups=g)`` with input depth C/g.
  Depthwise (groups == C) is ``DepthwiseConv2D`` with kernel (kh, kw, C, m) from OIHW (C*m, 1, kh, kw)
  reshaped (C, m, kh, kw). ``padding="same"`` is Keras' own; it was checked against the canonical
  TensorFlow SAME rule (odd/even sizes, stride 2, even kernels) on all three backends in Keras 3.15
  and agrees for conv and max pool (the torch backend pads asymmetrically itself), so no explicit
  ZeroPadding2D is needed there. One deviation: on the torch backend an asymmetric SAME
  AveragePooling2D pads with replicated edge values and counts them (e.g. 3x3/2 on 8x8: errors ~0.4);
  for that case only, torch gets ZeroPadding2D + valid pooling + a constant rescale (see ``pool``).
  Keras refuses strides > 1 together with dilation > 1; that case is a stride-1 dilated conv over
  the input explicitly ZeroPadding2D-ed by the SAME rule, subsampled by the stride (same numbers).
* Dense kernel (in, out) unchanged. BatchNormalization weights [gamma, beta, moving_mean,
  moving_variance]; LayerNormalization [gamma, beta]; Embedding [table] (ids fed as int32).
* MultiHeadAttention(key_dim = D/h): query/key/value kernels (D, h, D/h) with bias (h, D/h), output
  kernel (h, D/h, D) with bias (D); causal through ``use_causal_mask``.
* LSTM: Keras' gate order i, f, c, o is the canonical i, f, g, o, so kernel (F, 4U), recurrent
  kernel (U, 4U) and bias (4U) pass unchanged.
"""
from __future__ import annotations

import importlib
import os
import time

import numpy as np

from suite.ops import same_padding
from suite.targets.base import Built, BuildContext, UnsupportedError
from suite.targets.nhwc import NCHW_TO_NHWC, NHWC_TO_NCHW, Ops, Tracker, Val

_COMPILED = {"jax": "jax.jit(stateless_call), AOT-compiled",
             "tensorflow": "tf.function(jit_compile=False)",
             "torch": "eager, torch.inference_mode"}
_LAYOUT = ("channels_last NHWC/HWIO; depthwise (kh,kw,C,m); dense (in,out); MHA (D,h,D/h); "
           "lstm (F,4U) gates ifco; ")
INJECTABLE_BUGS = ("lstm_gate_order",)


def unsupported(workload, info) -> str | None:
    """Every op of workloads/README.md maps to a Keras layer or keras.ops on all three backends."""
    return None


def native_weights(node, w: dict, in_shape, bug: str | None) -> list[np.ndarray]:
    """Canonical float64 parameters of one node -> float32 arrays in its Keras layer's weight order."""
    f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)  # noqa: E731
    a = node.attrs
    if node.op == "conv2d":
        k = w["kernel"]  # OIHW
        o, i, kh, kw = k.shape
        if _is_depthwise(node, in_shape):
            kernel = k.reshape(a["groups"], o // a["groups"], kh, kw).transpose(2, 3, 0, 1)
        else:
            kernel = k.transpose(2, 3, 1, 0)
        return [f32(kernel)] + ([f32(w["bias"])] if a["use_bias"] else [])
    if node.op == "batch_norm":
        return [f32(w[k]) for k in ("gamma", "beta", "moving_mean", "moving_var")]
    if node.op == "layer_norm":
        return [f32(w["gamma"]), f32(w["beta"])]
    if node.op == "embedding":
        return [f32(w["table"])]
    if node.op == "attention":
        d = in_shape[-1]
        h = a["num_heads"]
        hd = d // h
        # Output column index is head * hd + j (the reference's reshape), so a row-major reshape of
        # the out axis gives (heads, hd); wo's input axis splits the same way.
        out = []
        for key in ("q", "k", "v"):
            out += [f32(w[f"w{key}"].reshape(d, h, hd)), f32(w[f"b{key}"].reshape(h, hd))]
        return out + [f32(w["wo"].reshape(h, hd, d)), f32(w["bo"])]
    if node.op == "lstm":
        if bug == "lstm_gate_order":  # test-only: blocks read as i, g, f, o (a classic porting slip)
            u = a["units"]
            blocks = lambda m: np.concatenate([m[..., j * u:(j + 1) * u] for j in (0, 2, 1, 3)], -1)  # noqa: E731
            return [f32(blocks(w["kernel"])), f32(blocks(w["recurrent_kernel"])), f32(blocks(w["bias"]))]
        return [f32(w["kernel"]), f32(w["recurrent_kernel"]), f32(w["bias"])]
    if node.op == "dense":
        return [f32(w["kernel"])] + ([f32(w["bias"])] if a["use_bias"] else [])
    raise UnsupportedError(f"op {node.op}: no Keras weight mapping")


def _is_depthwise(node, in_shape) -> bool:
    a = node.attrs
    # DepthwiseConv2D, like Conv2D, refuses strides > 1 with dilation > 1; that case stays a grouped Conv2D.
    return (a["groups"] > 1 and a["groups"] == in_shape[1]
            and not (max(a["dilation"]) > 1 and max(a["strides"]) > 1))


def build_model(keras, workload, shapes, weights, bug=None):
    """Walks the workload graph into a functional keras.Model.

    Returns:
        (model, input_nhwc, output_nhwc, assignments) where assignments is [(layer, [arrays])] to be
        given to ``layer.set_weights`` once the model exists.
    """
    L, ops, backend = keras.layers, keras.ops, keras.backend.backend()
    assign = []

    tracker = Tracker(Ops(ops.transpose, ops.softmax, ops.add, ops.multiply, ops.concatenate))
    canon, nhwc = tracker.canon, tracker.nhwc

    def layer(lyr, node, x, **call):
        y = lyr(x, **call)  # calling builds the layer, so its weights exist from here on
        assign.append((lyr, native_weights(node, weights[node.name], shapes[node.inputs[0]], bug)))
        return y

    def conv2d(node, v):
        a, x = node.attrs, nhwc(v)
        s, d, k = a["strides"], a["dilation"], a["kernel_size"]
        common = dict(strides=s, padding=a["padding"], dilation_rate=d, use_bias=a["use_bias"],
                      data_format="channels_last")
        step = None
        if max(s) > 1 and max(d) > 1:  # Keras refuses this pair: stride-1 conv, then subsample
            if a["padding"] == "same":
                _, h, w = shapes[node.inputs[0]][1:]
                pads = [same_padding(n, k[i], s[i], d[i])[1:] for i, n in enumerate((h, w))]
                x = L.ZeroPadding2D(pads, data_format="channels_last")(x)
            common.update(strides=1, padding="valid")
            step = s
        if _is_depthwise(node, shapes[node.inputs[0]]):
            lyr = L.DepthwiseConv2D(k, depth_multiplier=a["filters"] // a["groups"], **common)
        else:
            lyr = L.Conv2D(a["filters"], k, groups=a["groups"], **common)
        y = layer(lyr, node, x)
        return y[:, ::step[0], ::step[1], :] if step else y

    def pool(node, v, cls):
        a, x = node.attrs, nhwc(v)
        k, s = a["pool_size"], a["strides"]
        pads = [same_padding(n, k[i], s[i], 1)[1:] for i, n in enumerate(shapes[node.inputs[0]][2:])]
        if cls is L.AveragePooling2D and a["padding"] == "same" and backend == "torch" and any(
                p0 != p1 for p0, p1 in pads):
            # Keras 3.15's torch backend pads an asymmetric SAME pool with *replicated* edge values and
            # averages them in (right for max, wrong for mean). Workaround, torch only: zero-pad, mean over
            # the full window, rescale by window size / real positions (a shape-only constant).
            y = cls(k, s, "valid", data_format="channels_last")(L.ZeroPadding2D(pads, data_format="channels_last")(x))
            real = [np.array([min(o * s[i] - pads[i][0] + k[i], n) - max(o * s[i] - pads[i][0], 0)
                              for o in range(y.shape[1 + i])]) for i, n in enumerate(shapes[node.inputs[0]][2:])]
            scale = (k[0] * k[1] / np.outer(real[0], real[1])).astype(np.float32)
            return Val(ops.multiply(y, scale[None, :, :, None]), True)
        return Val(cls(k, s, a["padding"], data_format="channels_last")(x), True)

    def run_node(node, vals):
        a, op, v = node.attrs, node.op, vals[0]
        if op == "conv2d":
            return Val(conv2d(node, v), True)
        if op == "max_pool2d":
            return pool(node, v, L.MaxPooling2D)
        if op == "avg_pool2d":
            return pool(node, v, L.AveragePooling2D)
        if op == "global_avg_pool":
            return Val(L.GlobalAveragePooling2D(data_format="channels_last")(nhwc(v)))
        if op == "batch_norm":  # channels last in (N, C) and NHWC alike
            x = nhwc(v) if len(v.t.shape) == 4 else v.t
            y = layer(L.BatchNormalization(axis=-1, epsilon=a["epsilon"]), node, x, training=False)
            return Val(y, len(y.shape) == 4)
        if op in ("relu", "sigmoid", "tanh", "gelu"):
            fn = {"relu": ops.relu, "sigmoid": ops.sigmoid, "tanh": ops.tanh,
                  "gelu": lambda t: ops.gelu(t, approximate=False)}[op]
            return Val(fn(v.t), v.nhwc)
        y = tracker.layout_free(op, vals, a)
        if y is not None:
            return y
        x = canon(v)  # everything below reads axes in canonical order
        if op == "dense":
            return Val(layer(L.Dense(a["units"], use_bias=a["use_bias"]), node, x))
        if op == "layer_norm":
            return Val(layer(L.LayerNormalization(axis=-1, epsilon=a["epsilon"]), node, x))
        if op == "matmul":
            b = canon(vals[1])
            return Val(ops.matmul(x, ops.swapaxes(b, -1, -2) if a["transpose_b"] else b))
        if op in ("reshape", "flatten"):
            return Val(ops.reshape(x, shapes[node.name]))  # static shapes: the cell is fixed
        if op == "mean":
            return Val(ops.mean(x, axis=tuple(a["axis"]), keepdims=a["keepdims"]))
        if op == "embedding":
            return Val(layer(L.Embedding(a["vocab_size"], a["dim"]), node, x))
        if op == "attention":
            d = shapes[node.inputs[0]][-1]
            mha = L.MultiHeadAttention(a["num_heads"], key_dim=d // a["num_heads"])
            return Val(layer(mha, node, x, value=x, use_causal_mask=a["causal"], training=False))
        if op == "lstm":
            lstm = L.LSTM(a["units"], return_sequences=a["return_sequences"])
            return Val(layer(lstm, node, x, training=False))
        raise UnsupportedError(f"op {op}: no Keras mapping")

    inputs, env, input_nhwc = [], {}, []
    for spec in workload.inputs:
        shape = tuple(shapes[spec.name])
        img = len(shape) == 4 and spec.dtype == "float32"  # integer rank-4 inputs are ids, never images
        native = tuple(shape[i] for i in NCHW_TO_NHWC) if img else shape
        t = keras.Input(shape=native[1:], batch_size=native[0], name=spec.name,
                        dtype="float32" if spec.dtype == "float32" else "int32")
        inputs.append(t)
        input_nhwc.append(img)
        env[spec.name] = Val(t, img)
    for node in workload.nodes:
        env[node.name] = run_node(node, [env[s] for s in node.inputs])
    outs = [env[o] for o in workload.outputs]
    model = keras.Model(inputs=inputs, outputs=[o.t for o in outs], name=workload.name)
    return model, input_nhwc, [o.nhwc for o in outs], assign


def _import_keras(backend: str):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up logs quiet
    import keras

    if keras.backend.backend() != backend:
        raise RuntimeError(f"keras runs backend {keras.backend.backend()!r} in this worker, target wants "
                           f"{backend!r}: KERAS_BACKEND must be set before keras is imported "
                           f"(suite.profiles.worker_env does it for the keras-{backend} family)")
    return keras


def _compile(keras, model, backend, example, device):
    """Returns (fn(list of tensors) -> list of outputs, synchronize, compile_s) per the backend's idiom."""
    if backend == "jax":
        import jax

        trainable = [v.value for v in model.trainable_variables]
        frozen = [v.value for v in model.non_trainable_variables]

        def forward(tv, ntv, xs):
            return model.stateless_call(tv, ntv, xs, training=False)[0]

        t0 = time.perf_counter()
        compiled = jax.jit(forward).lower(trainable, frozen, example).compile()
        compile_s = time.perf_counter() - t0
        return (lambda xs: compiled(trainable, frozen, xs)), jax.block_until_ready, compile_s
    if backend == "tensorflow":
        import tensorflow as tf

        sig = [tf.TensorSpec(x.shape, x.dtype) for x in example]
        fn = tf.function(lambda *xs: model(list(xs), training=False), input_signature=sig, jit_compile=False)
        t0 = time.perf_counter()
        fn.get_concrete_function()
        compile_s = time.perf_counter() - t0

        def sync(_outputs):
            if device == "cuda":
                tf.test.experimental.sync_devices()
            # CPU: an eagerly called tf.function returns computed tensors.

        return (lambda xs: fn(*xs)), sync, compile_s
    import torch

    def run(xs):
        with torch.inference_mode():
            return model(xs, training=False)

    def sync(_outputs):
        if device == "cuda":
            torch.cuda.synchronize()

    return run, sync, None


def build(ctx: BuildContext) -> Built:
    """Builds the cell's functional keras.Model, sets its weights, and compiles it per the backend."""
    backend = ctx.info.runtime
    bug = ctx.info.options.get("inject_bug")
    if bug is not None and bug not in INJECTABLE_BUGS:
        raise ValueError(f"inject_bug={bug!r}: expected one of {', '.join(INJECTABLE_BUGS)}")
    keras = _import_keras(backend)
    if ctx.device == "cuda" and backend == "torch":
        import torch

        # TF32 would make float32 matmuls ~1e-3 accurate: verification would mean nothing.
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    # No keras.utils.set_random_seed: it imports tensorflow to seed it too (TF must stay out of the
    # torch and jax workers), and every initialiser is overwritten by set_weights below anyway.
    model, input_nhwc, output_nhwc, assign = build_model(keras, ctx.workload, ctx.shapes, ctx.weights, bug)
    for lyr, arrays in assign:
        lyr.set_weights(arrays)  # checks count and shapes against the layer's own weight order

    names = [s.name for s in ctx.workload.inputs]
    ints = {s.name for s in ctx.workload.inputs if s.dtype != "float32"}

    def prepare(host):
        xs = []
        for name, img in zip(names, input_nhwc):
            x = np.transpose(host[name], NCHW_TO_NHWC) if img else host[name]
            x = np.ascontiguousarray(x, dtype=np.int32 if name in ints else np.float32)
            xs.append(keras.ops.convert_to_tensor(x))  # on the backend's default device
        return xs

    example = prepare({s.name: np.zeros(ctx.shapes[s.name]) for s in ctx.workload.inputs})
    fn, sync, compile_s = _compile(keras, model, backend, example, ctx.device)

    def run(prepared):
        out = fn(prepared)
        return tuple(out) if isinstance(out, (list, tuple)) else (out,)

    def to_numpy(outputs):
        return [np.transpose(a, NHWC_TO_NCHW) if flag else a
                for a, flag in zip((keras.ops.convert_to_numpy(o) for o in outputs), output_nhwc)]

    return Built(prepare=prepare, run=run, to_numpy=to_numpy, synchronize=sync,
                 layout=_LAYOUT + _COMPILED[backend],
                 versions={"keras": keras.__version__, backend: importlib.import_module(backend).__version__},
                 compile_s=compile_s)
