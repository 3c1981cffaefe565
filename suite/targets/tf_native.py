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
"""
from __future__ import annotations

import math
import os
import time

import numpy as np

from suite.targets.base import Built, BuildContext, UnsupportedError
from suite.targets.nhwc import NCHW_TO_NHWC, NHWC_TO_NCHW, Ops, Tracker, Val

LAYOUT = ("NHWC/HWIO; depthwise (kh,kw,C,m); dense (in,out); "
          "lstm fused kernel (F,4U) gates ifgo, while_loop over time")



def unsupported(workload, info) -> str | None:
    """Every op of workloads/README.md has a raw-TensorFlow form on CPU and GPU."""
    return None


def _import_tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep C++ start-up logs out of worker output
    import tensorflow as tf

    return tf


def _build_graph_fn(tf, workload, shapes, variables):
    """Returns f(*inputs) -> tuple of outputs, walking the workload graph with raw TF ops."""

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
            y = tf.nn.batch_normalization(x, w["moving_mean"], w["moving_var"], w["beta"], w["gamma"],
                                          a["epsilon"])
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


def build(ctx: BuildContext) -> Built:
    """Builds one cell's model as a tf.Module + tf.function with a fixed input signature."""
    tf = _import_tf()
    wl, shapes = ctx.workload, ctx.shapes
    jit = bool(ctx.info.options.get("jit_compile", False))
    bug = ctx.info.options.get("inject_bug")
    if ctx.threads and ctx.threads > 0:
        try:  # only possible before the TF runtime starts; the worker's env vars cover later builds
            tf.config.threading.set_intra_op_parallelism_threads(ctx.threads)
        except RuntimeError:
            pass
    gpu = ctx.device == "cuda"
    if gpu and not tf.config.list_physical_devices("GPU"):
        raise UnsupportedError("device cuda: TensorFlow sees no GPU (is tensorflow[and-cuda] installed?)")
    device = "/GPU:0" if gpu else "/CPU:0"
    native = _native_weights(wl, ctx.weights, bug)

    # Input signature in the native layout: rank-4 float inputs are NHWC.
    in_specs, to_nhwc = [], []
    for spec in wl.inputs:
        shape = tuple(shapes[spec.name])
        img = len(shape) == 4 and spec.dtype == "float32"
        to_nhwc.append(img)
        in_specs.append(tf.TensorSpec([shape[i] for i in NCHW_TO_NHWC] if img else shape,
                                      tf.as_dtype(spec.dtype), name=spec.name))

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
        with tf.device(device):
            return [tf.constant(np.transpose(host[s.name], NCHW_TO_NHWC) if img else host[s.name])
                    for s, img in zip(wl.inputs, to_nhwc)]

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
