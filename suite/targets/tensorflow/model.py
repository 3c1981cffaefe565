"""TensorFlow target: raw TensorFlow ops in a tf.Module, run through tf.function (optionally XLA).

Serves ``tensorflow:function`` and ``tensorflow:xla`` (``info.options.jit_compile``). The model is built
from tf.nn / tf.linalg ops over tf.Variables, not from Keras layers, so what is timed is TensorFlow itself.

The graph is walked node by node through the op table (:mod:`suite.targets.tensorflow.ops`: NHWC layout
tracking, one function per op) over weights mapped by the weight table
(:mod:`suite.targets.tensorflow.weights`: HWIO / depthwise kernels). Rank-4 float model inputs are made
NHWC in ``prepare`` and NHWC outputs are made NCHW in ``to_numpy``, both outside anything timed.
:func:`forward_module` is the public builder the exporters (:mod:`suite.targets.tensorflow.export`) share;
training (``build_train``) is :mod:`suite.targets.tensorflow.train`.
"""
from __future__ import annotations

import time

import numpy as np

from suite.targets.base import Built, BuildContext
from suite.targets.common.nhwc import NCHW_TO_NHWC, NHWC_TO_NCHW, Ops, Tracker, Val
from suite.targets.common.optables import lookup
from suite.targets.tensorflow import runtime
from suite.targets.tensorflow.ops import OPS, UNSUPPORTED, Graph
from suite.targets.tensorflow.weights import native_weights

LAYOUT = ("NHWC/HWIO; depthwise (kh,kw,C,m); dense (in,out); "
          "lstm fused kernel (F,4U) gates ifgo, while_loop over time")


def unsupported(workload, info) -> str | None:
    """Every op of workloads/README.md has a raw-TensorFlow form on CPU and GPU (``ops.UNSUPPORTED`` is empty)."""
    for node in workload.nodes:
        if node.op in UNSUPPORTED:
            return f"op {node.op}: {UNSUPPORTED[node.op]}"
    return None


def graph_fn(tf, workload, shapes, variables, training=False, bn_momentum=None):
    """Returns f(*inputs) -> (outputs, NHWC flags), walking the workload graph with the op table.

    Args:
        variables: node name -> parameter name -> tf.Variable in TensorFlow's layout.
        training: normalise batch_norm with the batch statistics (train mode); with ``bn_momentum`` set,
            also move the moving statistics towards them (Keras' convention), as a training step does.
    """
    g = Graph(Tracker(Ops(tf.transpose, tf.nn.softmax, tf.add, tf.multiply, tf.concat)), shapes,
              training, bn_momentum)
    # Looked up now, not while tracing: an op missing from the table is a clear error at build time.
    steps = [(node, lookup(OPS, node.op, "tensorflow")) for node in workload.nodes]
    input_names = [s.name for s in workload.inputs]

    def forward(*inputs):
        # Rank-4 float inputs arrive NHWC (see prepare); integer inputs are ids, never images.
        env = {name: Val(t, t.shape.rank == 4 and t.dtype.is_floating) for name, t in zip(input_names, inputs)}
        for node, fn in steps:
            env[node.name] = fn(tf, g, node, [env[s] for s in node.inputs], variables.get(node.name, {}))
        return tuple(env[o].t for o in workload.outputs), tuple(env[o].nhwc for o in workload.outputs)

    return forward


def input_specs(tf, wl, shapes):
    """Input signature in the native layout (rank-4 float inputs are NHWC) and which inputs to transpose."""
    in_specs, to_nhwc = [], []
    for spec in wl.inputs:
        shape = tuple(shapes[spec.name])
        img = len(shape) == 4 and spec.dtype == "float32"
        to_nhwc.append(img)
        in_specs.append(tf.TensorSpec([shape[i] for i in NCHW_TO_NHWC] if img else shape,
                                      tf.as_dtype(spec.dtype), name=spec.name))
    return in_specs, to_nhwc


def host_to_device(tf, wl, host, to_nhwc, device):
    """Host NumPy inputs (canonical) -> tensors on ``device``, rank-4 float inputs transposed to NHWC."""
    with tf.device(device):
        return [tf.constant(np.transpose(host[s.name], NCHW_TO_NHWC) if img else host[s.name])
                for s, img in zip(wl.inputs, to_nhwc)]


def forward_module(tf, ctx: BuildContext, jit_compile=None):
    """The cell's inference graph as a tf.Module whose ``forward`` is a tf.function with a fixed signature.

    Built in the caller's device scope, not traced yet (the caller times or exports the tracing).

    Returns:
        (module, input specs, to_nhwc flags of the inputs, NHWC flags of the outputs: a list filled in
        when ``module.forward`` is traced).
    """
    if ctx.workload.source is not None:  # a keras source, exported from its TensorFlow backend
        from suite.sources.keras import forward_module as keras_forward

        return keras_forward(tf, ctx)
    wl, shapes = ctx.workload, ctx.shapes
    native = native_weights(wl, ctx.weights)
    in_specs, to_nhwc = input_specs(tf, wl, shapes)
    module = tf.Module(name=wl.name)
    # tf.Module tracks the variables through this attribute (checkpointable, listed in .variables).
    module.params = {node: {k: tf.Variable(v, trainable=False, name=f"{node}_{k}") for k, v in p.items()}
                     for node, p in native.items()}
    forward = graph_fn(tf, wl, shapes, module.params)
    out_nhwc: list[bool] = []

    def call(*inputs):
        outs, flags = forward(*inputs)
        out_nhwc[:] = flags  # layout of each output, known once traced
        return outs

    # autograph off: the graph is written with explicit TF control flow (tf.while_loop), so tracing need
    # not rewrite Python.
    module.forward = tf.function(call, input_signature=in_specs, jit_compile=jit_compile, autograph=False)
    return module, in_specs, to_nhwc, out_nhwc


def build(ctx: BuildContext) -> Built:
    """Builds one cell's model as a tf.Module + tf.function with a fixed input signature."""
    tf = runtime.import_tf()
    wl = ctx.workload
    jit = ctx.info.options.jit_compile
    gpu, device = runtime.device(ctx.device, ctx.threads or 0)

    with tf.device(device):
        module, in_specs, to_nhwc, out_nhwc = forward_module(tf, ctx, jit_compile=jit)
        fn = module.forward

        t0 = time.perf_counter()
        fn.get_concrete_function()
        if jit:  # XLA compiles on the first call: do it here so compile time is not in first_call
            _ = [o.numpy() for o in fn(*[tf.zeros(s.shape, s.dtype) for s in in_specs])]
        compile_s = time.perf_counter() - t0

    def prepare(host):
        return host_to_device(tf, wl, host, to_nhwc, device)

    def run(prepared):
        return tuple(fn(*prepared))

    def to_numpy(outputs):
        return [np.transpose(o.numpy(), NHWC_TO_NCHW) if flag else o.numpy()
                for o, flag in zip(outputs, out_nhwc)]

    return Built(prepare=prepare, run=run, to_numpy=to_numpy, synchronize=lambda outputs: runtime.synchronize(gpu),
                 layout=LAYOUT, versions={"tensorflow": tf.__version__}, compile_s=compile_s,
                 device_memory=lambda: runtime.peak_memory(gpu))

