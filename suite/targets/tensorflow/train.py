"""TensorFlow training step (``build_train``) of ``tensorflow:function`` and ``tensorflow:xla``.

The same graph as inference (:func:`suite.targets.tensorflow.model.graph_fn`) over trainable tf.Variables
(batch norm's moving statistics stay non-trainable and are moved with Keras' momentum 0.99), batch norm on
batch statistics, the loss, tf.GradientTape and TensorFlow's own training kernels
(tf.raw_ops.ResourceApplyMomentum / ResourceApplyGradientDescent / ResourceApplyAdam) in one tf.function per
step. Native gradients and parameters go back to the canonical layout through
suite.targets.common.train_map (the weight table of :mod:`suite.targets.tensorflow.weights` applied to index
weights), so no mapping is written twice.
"""
from __future__ import annotations

import time

import numpy as np

from suite.targets.base import BuildContext, BuiltTrain
from suite.targets.common.nhwc import NHWC_TO_NCHW
from suite.targets.tensorflow import runtime
from suite.targets.tensorflow.model import LAYOUT, graph_fn, host_to_device, input_specs
from suite.targets.tensorflow.weights import native_weights

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

    tf = runtime.import_tf()
    wl, shapes = ctx.workload, ctx.shapes
    jit = ctx.info.options.jit_compile
    gpu, device = runtime.device(ctx.device, ctx.threads or 0)
    ops = {node.name: node.op for node in wl.nodes}
    native = native_weights(wl, ctx.weights)
    # The same mapping applied to index weights says which canonical element each native one came from.
    index = native_weights(wl, index_weights(wl, ctx.weights))
    names = [(n, k) for n, ps in native.items() for k in ps if is_trainable(ops[n], k)]
    cmap = CanonicalMap(wl, ctx.weights, {f"{n}/{k}": index[n][k] for n, k in names})
    in_specs, to_nhwc = input_specs(tf, wl, shapes)
    mse = wl.train.loss == "mean_squared_error"
    label_spec = tf.TensorSpec(label_shape(wl, ctx.params), tf.float32 if mse else tf.int32, name="labels")
    loss_fn = _loss_fn(tf, wl)

    with tf.device(device):
        module = tf.Module(name=f"{wl.name}_train")  # fresh variables per cell: nothing leaks between cells
        module.params = {n: {k: tf.Variable(v, trainable=is_trainable(ops[n], k), name=f"{n}_{k}")
                             for k, v in p.items()} for n, p in native.items()}
        train_vars = [module.params[n][k] for n, k in names]
        apply, module.opt_state = _optimizer(tf, wl.train.optimizer, train_vars)
        step_graph = graph_fn(tf, wl, shapes, module.params, training=True, bn_momentum=BN_MOMENTUM)
        grad_graph = graph_fn(tf, wl, shapes, module.params, training=True)  # no buffer updates

        def loss_and_grads(forward, args):
            *inputs, labels = args
            with tf.GradientTape() as tape:  # watches the trainable variables it sees
                loss = loss_fn(*forward(*inputs), labels)
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
        return host_to_device(tf, wl, host, to_nhwc, device) + [lab]

    def gradients(prepared):
        grads = module.grads(*prepared)
        return cmap.to_canonical({f"{n}/{k}": g.numpy() for (n, k), g in zip(names, grads)})

    def parameters():
        return cmap.to_canonical({f"{n}/{k}": v.numpy() for (n, k), v in zip(names, train_vars)})

    return BuiltTrain(prepare=prepare, step=lambda prepared: step(*prepared),
                      loss_value=lambda loss: float(loss.numpy()), gradients=gradients, parameters=parameters,
                      synchronize=lambda loss: runtime.synchronize(gpu), layout=LAYOUT,
                      versions={"tensorflow": tf.__version__}, compile_s=compile_s,
                      device_memory=lambda: runtime.peak_memory(gpu),
                      reset_peak_memory=lambda: runtime.reset_peak_memory(gpu))
