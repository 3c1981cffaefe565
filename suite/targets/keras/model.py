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

Train mode (:func:`build_train`) is Keras' own fit step: ``model.compile(optimizer, loss)`` with Keras'
SGD / Adam and loss, ``jit_compile`` left at Keras' "auto" (jax: jit; tensorflow: XLA on a GPU, a plain
tf.function on a CPU-only host; torch: eager; the resolved value is recorded in ``layout``), and one
``train_on_batch`` per step.

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
from suite.targets.base import Built, BuildContext, BuiltTrain, UnsupportedError
from suite.targets.common.nhwc import NCHW_TO_NHWC, NHWC_TO_NCHW, Ops, Tracker, Val

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


def build_model(keras, workload, shapes, bug=None):
    """Walks the workload graph into a functional keras.Model.

    Returns:
        (model, input_nhwc, output_nhwc, assign_for) where ``assign_for(canonical weights)`` gives
        [(layer, [arrays])] to be given to ``layer.set_weights`` once the model exists (the same
        mapping serves the real weights and, in train mode, the index weights of suite.targets.common.train_map).
    """
    L, ops, backend = keras.layers, keras.ops, keras.backend.backend()
    placed = []  # (layer, node) in graph order

    tracker = Tracker(Ops(ops.transpose, ops.softmax, ops.add, ops.multiply, ops.concatenate))
    canon, nhwc = tracker.canon, tracker.nhwc

    def layer(lyr, node, x, **call):
        y = lyr(x, **call)  # calling builds the layer, so its weights exist from here on
        placed.append((lyr, node))
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

    def assign_for(w):
        return [(lyr, native_weights(node, w[node.name], shapes[node.inputs[0]], bug)) for lyr, node in placed]

    return model, input_nhwc, [o.nhwc for o in outs], assign_for


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


def _setup(ctx: BuildContext):
    """(keras, inject_bug) for the cell: checks the option and the worker's backend, pins float32 matmuls."""
    bug = None
    if bug is not None and bug not in INJECTABLE_BUGS:
        raise ValueError(f"inject_bug={bug!r}: expected one of {', '.join(INJECTABLE_BUGS)}")
    keras = _import_keras(ctx.info.options.backend)
    if ctx.device == "cuda" and ctx.info.options.backend == "torch":
        import torch

        # TF32 would make float32 matmuls ~1e-3 accurate: verification would mean nothing.
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    return keras, bug


def _input_converter(keras, workload, input_nhwc):
    """host inputs (canonical numpy) -> list of backend tensors in the model's input order and layout."""
    names = [s.name for s in workload.inputs]
    ints = {s.name for s in workload.inputs if s.dtype != "float32"}

    def convert(host):
        xs = []
        for name, img in zip(names, input_nhwc):
            x = np.transpose(host[name], NCHW_TO_NHWC) if img else host[name]
            x = np.ascontiguousarray(x, dtype=np.int32 if name in ints else np.float32)
            xs.append(keras.ops.convert_to_tensor(x))  # on the backend's default device
        return xs

    return convert


def _versions(keras, backend) -> dict[str, str]:
    return {"keras": keras.__version__, backend: importlib.import_module(backend).__version__}


def build(ctx: BuildContext) -> Built:
    """Builds the cell's functional keras.Model, sets its weights, and compiles it per the backend."""
    backend = ctx.info.options.backend
    keras, bug = _setup(ctx)
    # No keras.utils.set_random_seed: it imports tensorflow to seed it too (TF must stay out of the
    # torch and jax workers), and every initialiser is overwritten by set_weights below anyway.
    model, input_nhwc, output_nhwc, assign_for = build_model(keras, ctx.workload, ctx.shapes, bug)
    for lyr, arrays in assign_for(ctx.weights):
        lyr.set_weights(arrays)  # checks count and shapes against the layer's own weight order

    prepare = _input_converter(keras, ctx.workload, input_nhwc)
    example = prepare({s.name: np.zeros(ctx.shapes[s.name]) for s in ctx.workload.inputs})
    fn, sync, compile_s = _compile(keras, model, backend, example, ctx.device)

    def run(prepared):
        out = fn(prepared)
        return tuple(out) if isinstance(out, (list, tuple)) else (out,)

    def to_numpy(outputs):
        return [np.transpose(a, NHWC_TO_NCHW) if flag else a
                for a, flag in zip((keras.ops.convert_to_numpy(o) for o in outputs), output_nhwc)]

    return Built(prepare=prepare, run=run, to_numpy=to_numpy, synchronize=sync,
                 layout=_LAYOUT + _COMPILED[backend], versions=_versions(keras, backend), compile_s=compile_s)


# ---- training step (train mode) ----

def _optimizer(keras, config, backend):
    """Keras' own optimiser for ``workload.train.optimizer``. SGD's velocity ``v = m v - lr g`` is -lr times
    suite.training's ``buf``, so the updates agree; Adam adds epsilon to sqrt(v) before bias correction
    ("epsilon hat"), which the train tolerances allow for (suite.verify).

    One workaround, tensorflow + Adam only: an Embedding's gradient is a tf.IndexedSlices with one row per
    lookup, and Keras 3.15 feeds it to Adam's update as is: m, v and the parameter get one scatter-add per
    lookup, so a token seen k times in the batch moves by up to k * lr per step and v sums squares instead
    of squaring the sum (ids [0, 0, 0, 1], Adam lr 0.1, two steps: row 0 moves 0.346 on tensorflow, 0.200 on
    jax and torch). tf.keras 2 deduplicated such slices first; here they are summed into a dense gradient,
    which is that semantics. SGD is linear in the gradient, so its scatter-adds are already right.
    """
    if config["kind"] == "sgd":
        return keras.optimizers.SGD(learning_rate=config["learning_rate"], momentum=config["momentum"],
                                    nesterov=config["nesterov"])
    cls = keras.optimizers.Adam
    if backend == "tensorflow":
        import tensorflow as tf

        class DenseSlicesAdam(keras.optimizers.Adam):
            def apply(self, grads, trainable_variables=None):
                grads = [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g for g in grads]
                return super().apply(grads, trainable_variables)

        cls = DenseSlicesAdam
    return cls(learning_rate=config["learning_rate"], beta_1=config["beta_1"], beta_2=config["beta_2"],
               epsilon=config["epsilon"])


def _loss(keras, workload):
    """The Keras loss of ``workload.train``; its default reduction (sum over batch size, i.e. over every
    position the per-position loss has) makes it the plain mean of suite.training."""
    from suite.training import classes_axis

    if workload.train.loss == "softmax_cross_entropy":
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True, axis=classes_axis(workload))
    return keras.losses.MeanSquaredError()


def _gradient_fn(keras, backend, model, loss_fn):
    """``grads(xs, y) -> [array per model.trainable_variables]`` at the current weights, no update, the way
    Keras' custom ``train_step`` guides write it per backend. Batch norm runs in training mode (batch
    statistics); the moving statistics it updates on tensorflow and torch are restored afterwards."""
    variables = model.trainable_variables
    frozen = model.non_trainable_variables

    def keep_frozen(fn):
        def wrapped(xs, y):
            saved = [v.numpy() for v in frozen]
            try:
                return fn(xs, y)
            finally:
                for v, a in zip(frozen, saved):
                    v.assign(a)
        return wrapped

    if backend == "jax":
        import jax

        def loss_of(tv, ntv, xs, y):
            pred, _ = model.stateless_call(tv, ntv, xs, training=True)
            return loss_fn(y, pred)

        grad = jax.jit(jax.grad(loss_of))  # stateless: nothing to restore
        return lambda xs, y: [np.asarray(g) for g in grad([v.value for v in variables],
                                                          [v.value for v in frozen], xs, y)]
    if backend == "tensorflow":
        import tensorflow as tf

        # Traced like Keras' own train function (tf.function, XLA when model.jit_compile): the numbers are
        # the step's. Eagerly, the backward of Keras' unfused batch norm (tf.nn.moments +
        # tf.nn.batch_normalization) is ~1e-3 off in float32 on a batch-32 ResNet (relative L2 error of
        # the gradient); in graph mode Grappler rewrites it and the error is ~1e-6, as on jax and torch.
        @tf.function(jit_compile=bool(model.jit_compile))
        def tf_grads(xs, y):
            with tf.GradientTape() as tape:
                loss = loss_fn(y, model(xs, training=True))
            # An embedding's gradient is IndexedSlices (rows looked up); densify it.
            return [tf.convert_to_tensor(g) for g in tape.gradient(loss, variables)]

        return keep_frozen(lambda xs, y: [g.numpy() for g in tf_grads(xs, y)])

    def torch_grads(xs, y):
        for v in variables:
            v.value.grad = None
        loss_fn(y, model(xs, training=True)).backward()
        out = [v.value.grad.detach().cpu().numpy() for v in variables]
        for v in variables:
            v.value.grad = None  # the next train step starts from clean .grad, as Keras' zero_grad does
        return out

    return keep_frozen(torch_grads)


def _memory(backend, device):
    """(device_memory, reset_peak_memory) on a GPU, (None, None) on the CPU (the worker reads RSS there)."""
    if device != "cuda":
        return None, None
    if backend == "torch":
        import torch

        torch.cuda.reset_peak_memory_stats()  # the peak is process-wide: report this cell, not an earlier one
        return (lambda: int(torch.cuda.max_memory_allocated())), torch.cuda.reset_peak_memory_stats
    if backend == "tensorflow":
        import tensorflow as tf

        return (lambda: int(tf.config.experimental.get_memory_info("GPU:0")["peak"]),
                lambda: tf.config.experimental.reset_memory_stats("GPU:0"))
    import jax

    dev = jax.devices()[0]

    def jax_peak():
        stats = dev.memory_stats()
        return stats.get("peak_bytes_in_use") if stats else None

    return jax_peak, None  # jax exposes no reset of the allocator's peak


def build_train(ctx: BuildContext) -> BuiltTrain:
    """A Keras fit step: the functional model of :func:`build`, ``model.compile(optimizer, loss)`` with Keras'
    own optimiser and loss on the train output, and ``train_on_batch`` per step.

    The training model is a second functional model over the same layers whose only output is the train
    output in canonical layout, so the loss is exactly the workload's (no loss on other outputs). One
    ``train_on_batch`` on zeros in build traces and compiles the step (``compile_s``; jax and tensorflow)
    and builds the optimiser; the weights and optimiser variables are then restored, so the first real
    step starts from the canonical weights with fresh optimiser state.
    """
    from suite.targets.common.train_map import CanonicalMap, index_weights
    from suite.training import label_shape

    backend = ctx.info.options.backend
    wl = ctx.workload
    spec = wl.train
    keras, bug = _setup(ctx)
    full, input_nhwc, output_nhwc, assign_for = build_model(keras, wl, ctx.shapes, bug)
    paths = [v.path for v in full.trainable_variables]
    if len(set(paths)) != len(paths):
        raise RuntimeError(f"keras variable paths are not unique: {paths}")
    # The same mapping applied to index weights says where each native element came from.
    for lyr, arrays in assign_for(index_weights(wl, ctx.weights)):
        lyr.set_weights(arrays)
    cmap = CanonicalMap(wl, ctx.weights, {v.path: v.numpy() for v in full.trainable_variables})
    initial = assign_for(ctx.weights)
    for lyr, arrays in initial:
        lyr.set_weights(arrays)

    out = full.outputs[spec.output_index]
    if output_nhwc[spec.output_index]:  # the loss reads the canonical layout (class axis, label order)
        out = keras.ops.transpose(out, NHWC_TO_NCHW)
    model = keras.Model(inputs=full.inputs, outputs=out, name=f"{wl.name}_train")
    loss_fn = _loss(keras, wl)
    model.compile(optimizer=_optimizer(keras, spec.optimizer, backend), loss=loss_fn)  # jit_compile: Keras' "auto"
    train_paths = [v.path for v in model.trainable_variables]

    convert = _input_converter(keras, wl, input_nhwc)
    label_dtype = np.int32 if spec.loss == "softmax_cross_entropy" else np.float32

    def prepare(inputs, labels):
        return convert(inputs), keras.ops.convert_to_tensor(np.ascontiguousarray(labels, dtype=label_dtype))

    # Trace, compile and build the optimiser now, then put the weights and the optimiser state back.
    warm = prepare({s.name: np.zeros(ctx.shapes[s.name]) for s in wl.inputs},
                   np.zeros(label_shape(wl, ctx.params), dtype=label_dtype))
    model.optimizer.build(model.trainable_variables)
    opt_state = [v.numpy() for v in model.optimizer.variables]
    t0 = time.perf_counter()
    model.train_on_batch(*warm, return_dict=False)
    compile_s = time.perf_counter() - t0
    for lyr, arrays in initial:
        lyr.set_weights(arrays)
    for v, a in zip(model.optimizer.variables, opt_state):
        v.assign(a)

    grad_fn = _gradient_fn(keras, backend, model, loss_fn)
    device_memory, reset_peak_memory = _memory(backend, ctx.device)

    def step(prepared):
        return model.train_on_batch(*prepared, return_dict=False)  # the loss before the update, a float

    def synchronize(_loss):
        # train_on_batch already returns a Python float (Keras converts its logs), which waits for the
        # step's executable / graph / stream on the CPU; on a GPU wait for the parameter updates too.
        if ctx.device != "cuda":
            return
        if backend == "torch":
            import torch

            torch.cuda.synchronize()
        elif backend == "tensorflow":
            import tensorflow as tf

            tf.test.experimental.sync_devices()
        else:
            import jax

            jax.block_until_ready([v.value for v in model.trainable_variables])

    def gradients(prepared):
        grads = dict(zip(train_paths, grad_fn(*prepared)))
        # A variable the train output does not depend on (none in the shipped workloads) has zero gradient.
        return cmap.to_canonical({v.path: grads.get(v.path, np.zeros(v.shape, np.float32))
                                  for v in full.trainable_variables})

    kind = {"jax": "jax.jit", "tensorflow": "tf.function + XLA" if model.jit_compile else "tf.function",
            "torch": "torch.compile" if model.jit_compile else "eager"}[backend]
    if backend == "tensorflow" and spec.optimizer["kind"] == "adam":
        kind += "; Adam gets IndexedSlices gradients densified"
    return BuiltTrain(
        prepare=prepare,
        step=step,
        loss_value=float,
        gradients=gradients,
        parameters=lambda: cmap.to_canonical({v.path: v.numpy() for v in full.trainable_variables}),
        synchronize=synchronize,
        layout=_LAYOUT + f"model.compile(jit_compile={model.jit_compile}) + train_on_batch ({kind})",
        versions=_versions(keras, backend),
        compile_s=compile_s if backend != "torch" or model.jit_compile else None,
        device_memory=device_memory,
        reset_peak_memory=reset_peak_memory,
    )
