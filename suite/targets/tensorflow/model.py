"""TensorFlow target: raw TensorFlow ops in a tf.Module, run through tf.function (optionally XLA).

Serves ``tensorflow:function`` and ``tensorflow:xla`` (``info.options["jit_compile"]``). The model is
built from tf.nn / tf.linalg ops over tf.Variables, not from Keras layers, so what is timed is
TensorFlow itself.

Native layouts (canonical -> TensorFlow), the only place they are mapped:

* Images are NHWC and conv kernels HWIO: TensorFlow's CPU kernels only implement NHWC convolution
  and pooling. Each tensor carries a layout flag while the graph is walked: conv, pooling and
  4-D batch norm produce NHWC; element-wise ops keep their operand's layout; concat and softmax
  remap their axis; everything whose meaning depends on axis order (flatten, reshape, transpose,
  matmul, mean, dense, layer norm on 4-D) first transposes back to canonical NCHW. Rank-4 model
  inputs are made NHWC in ``prepare`` and NHWC outputs are made NCHW in ``to_numpy``, both
  outside anything timed.
* Depthwise conv (groups == C): kernel (kh, kw, C, multiplier); output channel c*m + j is
  canonical output channel c*m + j, so OIHW (C*m, 1, kh, kw) -> reshape (C, m, kh, kw) -> HWCM.
* Other grouped conv: tf.nn.conv2d with an HWIO kernel of input depth C/groups; TF 2.21 runs
  grouped Conv2D on CPU in graph and XLA mode, so no split/concat is needed.
* Dense and attention kernels are (in, out): native for tf.matmul, unchanged.
* LSTM: fused kernel (F, 4U), recurrent kernel (U, 4U) in the canonical gate order i, f, g, o
  (unchanged); the input projection of all steps is one matmul, then a tf.while_loop over time.
  tf.raw_ops.BlockLSTM is not used: it has no XLA kernel.

Training (``build_train``): the same graph over trainable tf.Variables (batch norm's moving statistics
stay non-trainable and are moved with Keras' momentum 0.99), batch norm on batch statistics, the loss,
tf.GradientTape and TensorFlow's own training kernels (tf.raw_ops.ResourceApplyMomentum /
ResourceApplyGradientDescent / ResourceApplyAdam) in one tf.function per step. Native gradients and
parameters go back to the canonical layout through suite.targets.common.train_map (the weight mapping above
applied to index weights), so no mapping is written twice.
"""
from __future__ import annotations

import math
import os
import time

import numpy as np

from suite.targets.base import Built, BuildContext, BuiltTrain, UnsupportedError
from suite.targets.common.nhwc import NCHW_TO_NHWC, NHWC_TO_NCHW, Ops, Tracker, Val

LAYOUT = ("NHWC/HWIO; depthwise (kh,kw,C,m); dense (in,out); "
          "lstm fused kernel (F,4U) gates ifgo, while_loop over time")



def unsupported(workload, info) -> str | None:
    """Every op of workloads/README.md has a raw-TensorFlow form on CPU and GPU."""
    return None


def _import_tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep C++ start-up logs out of worker output
    import tensorflow as tf

    return tf


def _build_graph_fn(tf, workload, shapes, variables, training=False, bn_momentum=None):
    """Returns f(*inputs) -> (outputs, NHWC flags), walking the workload graph with raw TF ops.

    training=True normalises batch_norm with the batch statistics (train mode); with bn_momentum set it
    also moves the moving statistics towards them (Keras' convention), as a training step does.
    """

    tracker = Tracker(Ops(tf.transpose, tf.nn.softmax, tf.add, tf.multiply, tf.concat))
    canon, nhwc = tracker.canon, tracker.nhwc

    def dense(x, w, use_bias):
        y = tf.matmul(x, w["kernel"]) if x.shape.rank == 2 else tf.tensordot(x, w["kernel"], axes=1)
        return y + w["bias"] if use_bias else y

    def conv2d(v, w, a):
        x = nhwc(v)
        s, d = a["strides"], a["dilation"]
        pad = a["padding"].upper()  # TensorFlow's SAME is the canonical rule
        if "dw_kernel" in w:
            y = tf.nn.depthwise_conv2d(x, w["dw_kernel"], [1, s[0], s[1], 1], pad, dilations=d)
        else:  # groups == 1, or grouped: Conv2D infers groups from C / kernel input depth
            y = tf.nn.conv2d(x, w["kernel"], [1, s[0], s[1], 1], pad, dilations=[1, d[0], d[1], 1])
        if a["use_bias"]:
            y = tf.nn.bias_add(y, w["bias"])  # NHWC: channels last
        return Val(y, True)

    def pool(v, a, fn):
        k, s = a["pool_size"], a["strides"]
        return Val(fn(nhwc(v), [1, k[0], k[1], 1], [1, s[0], s[1], 1], a["padding"].upper()), True)

    def attention(x, w, num_heads, causal):
        n, l, d = x.shape
        hd = d // num_heads

        def heads(t):  # N, L, D -> N, h, L, hd
            return tf.transpose(tf.reshape(t, [n, l, num_heads, hd]), [0, 2, 1, 3])

        q = heads(dense(x, {"kernel": w["wq"], "bias": w["bq"]}, True))
        k = heads(dense(x, {"kernel": w["wk"], "bias": w["bk"]}, True))
        val = heads(dense(x, {"kernel": w["wv"], "bias": w["bv"]}, True))
        scores = tf.matmul(q, k, transpose_b=True) * (1.0 / math.sqrt(hd))
        if causal:
            # -inf above the diagonal: exp gives exactly 0, and the diagonal keeps every row finite.
            mask = np.triu(np.full((l, l), -np.inf, dtype=np.float32), k=1)
            scores = scores + tf.constant(mask)
        out = tf.matmul(tf.nn.softmax(scores, axis=-1), val)
        out = tf.reshape(tf.transpose(out, [0, 2, 1, 3]), [n, l, d])
        return dense(out, {"kernel": w["wo"], "bias": w["bo"]}, True)

    def lstm(x, w, units, return_sequences):
        n, t, f = x.shape
        # Input projection of every step in one matmul, time-major for the loop: (T, N, 4U).
        xz = tf.reshape(tf.matmul(tf.reshape(x, [n * t, f]), w["kernel"]) + w["bias"], [n, t, 4 * units])
        xz = tf.transpose(xz, [1, 0, 2])
        rk = w["recurrent_kernel"]
        seq = tf.TensorArray(tf.float32, size=t, element_shape=[n, units])

        def step(i, h, c, seq):
            z = xz[i] + tf.matmul(h, rk)
            zi, zf, zg, zo = tf.split(z, 4, axis=1)  # canonical gate order i, f, g, o
            c = tf.sigmoid(zf) * c + tf.sigmoid(zi) * tf.tanh(zg)
            h = tf.sigmoid(zo) * tf.tanh(c)
            return i + 1, h, c, (seq.write(i, h) if return_sequences else seq)

        zeros = tf.zeros([n, units], tf.float32)
        _, h, _, seq = tf.while_loop(lambda i, *_: i < t, step, (tf.constant(0), zeros, zeros, seq),
                                     maximum_iterations=t)
        return tf.transpose(seq.stack(), [1, 0, 2]) if return_sequences else h

    def run_node(node, vals):
        a, w = node.attrs, variables.get(node.name, {})
        op, v = node.op, vals[0]
        if op == "conv2d":
            return conv2d(v, w, a)
        if op == "max_pool2d":
            return pool(v, a, tf.nn.max_pool2d)
        if op == "avg_pool2d":
            return pool(v, a, tf.nn.avg_pool2d)  # SAME already excludes padded positions
        if op == "global_avg_pool":
            return Val(tf.reduce_mean(nhwc(v), axis=[1, 2]))
        if op == "batch_norm":  # channels last in both (N, C) and NHWC, so stats broadcast as (C,)
            x = nhwc(v) if v.t.shape.rank == 4 else v.t
            if training:  # batch mean and biased variance over every axis but channels (last)
                mean, var = tf.nn.moments(x, axes=list(range(x.shape.rank - 1)))
                if bn_momentum is not None:
                    w["moving_mean"].assign_sub((w["moving_mean"] - mean) * (1.0 - bn_momentum))
                    w["moving_var"].assign_sub((w["moving_var"] - var) * (1.0 - bn_momentum))
            else:
                mean, var = w["moving_mean"], w["moving_var"]
            y = tf.nn.batch_normalization(x, mean, var, w["beta"], w["gamma"], a["epsilon"])
            return Val(y, y.shape.rank == 4)
        if op in ("relu", "sigmoid", "tanh", "gelu"):
            fn = {"relu": tf.nn.relu, "sigmoid": tf.sigmoid, "tanh": tf.tanh,
                  "gelu": lambda t: tf.nn.gelu(t, approximate=False)}[op]
            return Val(fn(v.t), v.nhwc)
        y = tracker.layout_free(op, vals, a)
        if y is not None:
            return y
        x = canon(v)  # everything below reads axes in canonical order
        if op == "dense":
            return Val(dense(x, w, a["use_bias"]))
        if op == "layer_norm":
            mu, var = tf.nn.moments(x, axes=[-1], keepdims=True)  # biased variance
            return Val(tf.nn.batch_normalization(x, mu, var, w["beta"], w["gamma"], a["epsilon"]))
        if op == "matmul":
            return Val(tf.linalg.matmul(x, canon(vals[1]), transpose_b=a["transpose_b"]))
        if op in ("reshape", "flatten"):
            return Val(tf.reshape(x, shapes[node.name]))  # static shapes: the cell is fixed
        if op == "mean":
            return Val(tf.reduce_mean(x, axis=list(a["axis"]), keepdims=a["keepdims"]))
        if op == "embedding":
            return Val(tf.gather(w["table"], x))
        if op == "attention":
            return Val(attention(x, w, a["num_heads"], a["causal"]))
        if op == "lstm":
            return Val(lstm(x, w, a["units"], a["return_sequences"]))
        raise UnsupportedError(f"op {op}: no TensorFlow mapping")

    input_names = [s.name for s in workload.inputs]

    def forward(*inputs):
        # Rank-4 float inputs arrive NHWC (see prepare); integer inputs are ids, never images.
        env = {name: Val(t, t.shape.rank == 4 and t.dtype.is_floating) for name, t in zip(input_names, inputs)}
        for node in workload.nodes:
            env[node.name] = run_node(node, [env[s] for s in node.inputs])
        return tuple(env[o].t for o in workload.outputs), tuple(env[o].nhwc for o in workload.outputs)

    return forward


def _native_weights(workload, weights, bug):
    """Canonical float64 weights -> float32 arrays in TensorFlow's layout, per node."""
    out = {}
    for node in workload.nodes:
        p = weights.get(node.name)
        if not p:
            continue
        p = {k: np.asarray(v, dtype=np.float32) for k, v in p.items()}
        if node.op == "conv2d":
            k = p.pop("kernel")  # OIHW
            o, i, kh, kw = k.shape
            # test-only bug: OIHW merely reshaped to HWIO, a wrong mapping verification must catch
            bad = bug == "conv_kernel_not_transposed"
            hwio = k.reshape(kh, kw, i, o) if bad else k.transpose(2, 3, 1, 0)
            groups = node.attrs["groups"]
            d = node.attrs["dilation"]
            s = node.attrs["strides"]
            # depthwise_conv2d cannot stride and dilate at once; grouped Conv2D can.
            if groups > 1 and i == 1 and not (max(d) > 1 and max(s) > 1):
                m = o // groups
                dw = k.reshape(groups, m, kh, kw).transpose(2, 3, 0, 1)
                p["dw_kernel"] = np.ascontiguousarray(hwio.reshape(kh, kw, groups, m) if bad else dw)
            else:
                p["kernel"] = np.ascontiguousarray(hwio)
        out[node.name] = p
    return out


def _device(tf, ctx) -> tuple[bool, str]:
    """Applies the thread count and checks the device; returns (gpu, TensorFlow device name)."""
    if ctx.threads and ctx.threads > 0:
        try:  # only possible before the TF runtime starts; the worker's env vars cover later builds
            tf.config.threading.set_intra_op_parallelism_threads(ctx.threads)
        except RuntimeError:
            pass
    gpu = ctx.device == "cuda"
    if gpu and not tf.config.list_physical_devices("GPU"):
        raise UnsupportedError("device cuda: TensorFlow sees no GPU (is tensorflow[and-cuda] installed?)")
    return gpu, "/GPU:0" if gpu else "/CPU:0"


def _input_specs(tf, wl, shapes):
    """Input signature in the native layout (rank-4 float inputs are NHWC) and which inputs to transpose."""
    in_specs, to_nhwc = [], []
    for spec in wl.inputs:
        shape = tuple(shapes[spec.name])
        img = len(shape) == 4 and spec.dtype == "float32"
        to_nhwc.append(img)
        in_specs.append(tf.TensorSpec([shape[i] for i in NCHW_TO_NHWC] if img else shape,
                                      tf.as_dtype(spec.dtype), name=spec.name))
    return in_specs, to_nhwc


def _host_to_device(tf, wl, host, to_nhwc, device):
    with tf.device(device):
        return [tf.constant(np.transpose(host[s.name], NCHW_TO_NHWC) if img else host[s.name])
                for s, img in zip(wl.inputs, to_nhwc)]


def build(ctx: BuildContext) -> Built:
    """Builds one cell's model as a tf.Module + tf.function with a fixed input signature."""
    tf = _import_tf()
    wl, shapes = ctx.workload, ctx.shapes
    jit = ctx.info.options.jit_compile
    bug = None
    gpu, device = _device(tf, ctx)
    native = _native_weights(wl, ctx.weights, bug)
    in_specs, to_nhwc = _input_specs(tf, wl, shapes)

    with tf.device(device):
        module = tf.Module(name=wl.name)
        # tf.Module tracks the variables through this attribute (checkpointable, listed in .variables).
        module.params = {node: {k: tf.Variable(v, trainable=False, name=f"{node}_{k}") for k, v in p.items()}
                         for node, p in native.items()}
        graph_fn = _build_graph_fn(tf, wl, shapes, module.params)
        out_nhwc = []

        def call(*inputs):
            outs, flags = graph_fn(*inputs)
            out_nhwc[:] = flags  # layout of each output, known once traced
            return outs

        # autograph off: the graph is written with explicit TF control flow (tf.while_loop), so tracing
        # need not rewrite Python.
        module.forward = tf.function(call, input_signature=in_specs, jit_compile=jit, autograph=False)
        fn = module.forward

        t0 = time.perf_counter()
        fn.get_concrete_function()
        if jit:  # XLA compiles on the first call: do it here so compile time is not in first_call
            _ = [o.numpy() for o in fn(*[tf.zeros(s.shape, s.dtype) for s in in_specs])]
        compile_s = time.perf_counter() - t0

    def prepare(host):
        return _host_to_device(tf, wl, host, to_nhwc, device)

    def run(prepared):
        return tuple(fn(*prepared))

    def synchronize(outputs):
        if gpu:
            tf.test.experimental.sync_devices()
        # CPU: calling a tf.function eagerly returns computed tensors; nothing to wait for.

    def to_numpy(outputs):
        return [np.transpose(o.numpy(), NHWC_TO_NCHW) if flag else o.numpy()
                for o, flag in zip(outputs, out_nhwc)]

    def device_memory():
        return int(tf.config.experimental.get_memory_info("GPU:0")["peak"]) if gpu else None

    return Built(prepare=prepare, run=run, to_numpy=to_numpy, synchronize=synchronize, layout=LAYOUT,
                 versions={"tensorflow": tf.__version__}, compile_s=compile_s, device_memory=device_memory)


# Batch norm's moving statistics in a training step: Keras' default momentum. They are buffers, not
# compared by verification (suite.training); updating them keeps the step what a real training loop runs.
BN_MOMENTUM = 0.99


def _loss_fn(tf, wl):
    """(outputs, NHWC flags, labels) -> scalar loss of the output ``workload.train`` names, read in
    canonical axis order (an NHWC-flagged output is transposed back first)."""
    from suite.training import classes_axis

    spec = wl.train
    idx = spec.output_index

    def loss(outs, flags, labels):
        y = tf.transpose(outs[idx], NHWC_TO_NCHW) if flags[idx] else outs[idx]
        if spec.loss == "mean_squared_error":
            return tf.reduce_mean(tf.square(y - labels))
        rank = y.shape.rank
        ax = classes_axis(wl) % rank
        if ax != rank - 1:  # classes last; the other axes keep their order, as the labels do
            y = tf.transpose(y, [i for i in range(rank) if i != ax] + [ax])
        return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=y))

    return loss


def _optimizer(tf, config, train_vars):
    """TensorFlow's own training kernels (tf.raw_ops.ResourceApply*), not Keras.

    Returns (apply(grads), state variables). Update rules, as suite.training.Optimizer:
    * sgd: ResourceApplyMomentum keeps ``accum = momentum * accum + g`` and applies ``var -= lr * accum``
      (nesterov: ``var -= lr * (g + momentum * accum)``): PyTorch's buffer convention exactly.
      Momentum 0 is ResourceApplyGradientDescent.
    * adam: ResourceApplyAdam with slots m, v and the powers beta_1**t, beta_2**t as variables. It
      applies ``lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)``: epsilon on sqrt(v) before
      bias correction ("epsilon hat"), i.e. the textbook update with epsilon / sqrt(1 - b2^t). The
      workload's optimiser is the textbook one (suite.training), so the kernel is given
      ``eps * sqrt(1 - b2^t)`` at step t, which makes its update Algorithm 1 exactly: a hyper-parameter
      mapped to the kernel's convention, as layouts are. (Given the raw epsilon, the first step moves
      parameters whose |g| is near 31.6 eps differently by up to ~lr, and mobilenet_cnn at batch 32 fails.)
    """
    c = dict(config)
    f32 = lambda x: tf.constant(x, tf.float32)  # noqa: E731
    lr = f32(c["learning_rate"])
    if c["kind"] == "sgd" and c["momentum"] == 0:
        def apply(grads):
            for var, g in zip(train_vars, grads):
                tf.raw_ops.ResourceApplyGradientDescent(var=var.handle, alpha=lr, delta=g)
        return apply, []
    if c["kind"] == "sgd":
        accum = [tf.Variable(tf.zeros_like(v), trainable=False, name="momentum") for v in train_vars]
        momentum = f32(c["momentum"])

        def apply(grads):
            for var, acc, g in zip(train_vars, accum, grads):
                tf.raw_ops.ResourceApplyMomentum(var=var.handle, accum=acc.handle, lr=lr, grad=g,
                                                 momentum=momentum, use_nesterov=bool(c["nesterov"]))
        return apply, accum
    m = [tf.Variable(tf.zeros_like(v), trainable=False, name="m") for v in train_vars]
    v = [tf.Variable(tf.zeros_like(x), trainable=False, name="v") for x in train_vars]
    # The powers at step t are the inputs of step t: they start at beta (t = 1).
    b1_power = tf.Variable(c["beta_1"], dtype=tf.float32, trainable=False, name="beta_1_power")
    b2_power = tf.Variable(c["beta_2"], dtype=tf.float32, trainable=False, name="beta_2_power")
    b1, b2, eps = f32(c["beta_1"]), f32(c["beta_2"]), f32(c["epsilon"])

    def apply(grads):
        p1, p2 = b1_power.read_value(), b2_power.read_value()
        for var, mi, vi, g in zip(train_vars, m, v, grads):
            tf.raw_ops.ResourceApplyAdam(var=var.handle, m=mi.handle, v=vi.handle, beta1_power=p1,
                                         beta2_power=p2, lr=lr, beta1=b1, beta2=b2,
                                         epsilon=eps * tf.sqrt(1.0 - p2), grad=g)
        b1_power.assign(p1 * b1)
        b2_power.assign(p2 * b2)
    return apply, m + v + [b1_power, b2_power]


def build_train(ctx: BuildContext) -> BuiltTrain:
    """Builds one cell's training step: forward (batch statistics), loss, tf.GradientTape backward and the
    optimiser update, in one tf.function (XLA-compiled for ``tensorflow:xla``) over tf.Variables."""
    from suite.targets.common.train_map import CanonicalMap, index_weights
    from suite.training import is_trainable, label_shape

    tf = _import_tf()
    wl, shapes = ctx.workload, ctx.shapes
    jit = ctx.info.options.jit_compile
    bug = None
    gpu, device = _device(tf, ctx)
    ops = {node.name: node.op for node in wl.nodes}
    native = _native_weights(wl, ctx.weights, bug)
    # The same mapping applied to index weights says which canonical element each native one came from.
    index = _native_weights(wl, index_weights(wl, ctx.weights), bug)
    names = [(n, k) for n, ps in native.items() for k in ps if is_trainable(ops[n], k)]
    cmap = CanonicalMap(wl, ctx.weights, {f"{n}/{k}": index[n][k] for n, k in names})
    in_specs, to_nhwc = _input_specs(tf, wl, shapes)
    mse = wl.train.loss == "mean_squared_error"
    label_spec = tf.TensorSpec(label_shape(wl, ctx.params), tf.float32 if mse else tf.int32, name="labels")
    loss_fn = _loss_fn(tf, wl)

    with tf.device(device):
        module = tf.Module(name=f"{wl.name}_train")  # fresh variables per cell: nothing leaks between cells
        module.params = {n: {k: tf.Variable(v, trainable=is_trainable(ops[n], k), name=f"{n}_{k}")
                             for k, v in p.items()} for n, p in native.items()}
        train_vars = [module.params[n][k] for n, k in names]
        apply, module.opt_state = _optimizer(tf, wl.train.optimizer, train_vars)
        step_graph = _build_graph_fn(tf, wl, shapes, module.params, training=True, bn_momentum=BN_MOMENTUM)
        grad_graph = _build_graph_fn(tf, wl, shapes, module.params, training=True)  # no buffer updates

        def loss_and_grads(graph_fn, args):
            *inputs, labels = args
            with tf.GradientTape() as tape:  # watches the trainable variables it sees
                loss = loss_fn(*graph_fn(*inputs), labels)
            grads = tape.gradient(loss, train_vars)
            # embedding gradients arrive as IndexedSlices: the training kernels take dense gradients
            return loss, [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g)
                          for g, v in zip(grads, train_vars)]

        def step_fn(*args):
            loss, grads = loss_and_grads(step_graph, args)
            apply(grads)
            return loss  # computed before the update

        def grads_fn(*args):
            return loss_and_grads(grad_graph, args)[1]

        signature = in_specs + [label_spec]
        # autograph off, as in build: the graph uses explicit TF control flow.
        module.step = tf.function(step_fn, input_signature=signature, jit_compile=jit, autograph=False)
        module.grads = tf.function(grads_fn, input_signature=signature, jit_compile=jit, autograph=False)
        step = module.step

        t0 = time.perf_counter()
        step.get_concrete_function()
        if jit:  # XLA compiles on the first call: run it once on zeros, then put every variable back
            saved = [v.numpy() for v in module.variables]
            zeros = [tf.zeros(s.shape, s.dtype) for s in in_specs]
            float(step(*zeros, tf.zeros(label_spec.shape, label_spec.dtype)).numpy())
            for var, value in zip(module.variables, saved):
                var.assign(value)
        compile_s = time.perf_counter() - t0

    def prepare(host, labels):
        with tf.device(device):
            lab = tf.constant(np.asarray(labels, dtype=label_spec.dtype.as_numpy_dtype))
        return _host_to_device(tf, wl, host, to_nhwc, device) + [lab]

    def gradients(prepared):
        grads = module.grads(*prepared)
        return cmap.to_canonical({f"{n}/{k}": g.numpy() for (n, k), g in zip(names, grads)})

    def parameters():
        return cmap.to_canonical({f"{n}/{k}": v.numpy() for (n, k), v in zip(names, train_vars)})

    def synchronize(loss):
        if gpu:
            tf.test.experimental.sync_devices()

    def device_memory():
        return int(tf.config.experimental.get_memory_info("GPU:0")["peak"]) if gpu else None

    def reset_peak_memory():
        if gpu:
            tf.config.experimental.reset_memory_stats("GPU:0")

    return BuiltTrain(prepare=prepare, step=lambda prepared: step(*prepared),
                      loss_value=lambda loss: float(loss.numpy()), gradients=gradients, parameters=parameters,
                      synchronize=synchronize, layout=LAYOUT, versions={"tensorflow": tf.__version__},
                      compile_s=compile_s, device_memory=device_memory, reset_peak_memory=reset_peak_memory)
