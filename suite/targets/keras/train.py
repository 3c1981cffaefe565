"""Keras 3 training step (``build_train``) of ``keras[jax]``, ``keras[tensorflow]`` and ``keras[torch]``.

Train mode is Keras' own fit step: ``model.compile(optimizer, loss)`` with Keras' SGD / Adam
(:data:`OPTIMIZERS`) and loss, ``jit_compile`` left at Keras' "auto" (jax: jit; tensorflow: XLA on a GPU,
a plain tf.function on a CPU-only host; torch: eager; the resolved value is recorded in ``layout``), and
one ``train_on_batch`` per step. The model is :func:`suite.targets.keras.model.graph`'s; gradients for
verification are computed per backend the way Keras' custom ``train_step`` guides write them
(:func:`gradient_fn`). Device, sync and memory are the backend's runtime hooks.
"""
from __future__ import annotations

import time

import numpy as np

from suite.targets.base import BuildContext, BuiltTrain
from suite.targets.common.nhwc import NHWC_TO_NCHW
from suite.targets.keras.model import LAYOUT, graph, input_converter, setup, versions


def sgd(keras, config, backend):
    """Keras' SGD. Its velocity ``v = m v - lr g`` is -lr times suite.training's ``buf``, so the updates agree."""
    return keras.optimizers.SGD(learning_rate=config["learning_rate"], momentum=config["momentum"],
                                nesterov=config["nesterov"])


def adam(keras, config, backend):
    """Keras' Adam. It adds epsilon to sqrt(v) before bias correction ("epsilon hat"), which the train
    tolerances allow for (suite.verify).

    One workaround, tensorflow only: an Embedding's gradient is a tf.IndexedSlices with one row per
    lookup, and Keras 3.15 feeds it to Adam's update as is: m, v and the parameter get one scatter-add per
    lookup, so a token seen k times in the batch moves by up to k * lr per step and v sums squares instead
    of squaring the sum (ids [0, 0, 0, 1], Adam lr 0.1, two steps: row 0 moves 0.346 on tensorflow, 0.200 on
    jax and torch). tf.keras 2 deduplicated such slices first; here they are summed into a dense gradient,
    which is that semantics. SGD is linear in the gradient, so its scatter-adds are already right.
    """
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


OPTIMIZERS = {"sgd": sgd, "adam": adam}  # optimiser kind of the workload's train: section -> constructor


def loss(keras, workload):
    """The Keras loss of ``workload.train``; its default reduction (sum over batch size, i.e. over every
    position the per-position loss has) makes it the plain mean of suite.training."""
    from suite.training import classes_axis

    if workload.train.loss == "softmax_cross_entropy":
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True, axis=classes_axis(workload))
    return keras.losses.MeanSquaredError()


def gradient_fn(keras, backend, model, loss_fn):
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
                value = loss_fn(y, model(xs, training=True))
            # An embedding's gradient is IndexedSlices (rows looked up); densify it.
            return [tf.convert_to_tensor(g) for g in tape.gradient(value, variables)]

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


def build_train(ctx: BuildContext) -> BuiltTrain:
    """A Keras fit step: the functional model of :func:`~suite.targets.keras.model.graph`,
    ``model.compile(optimizer, loss)`` with Keras' own optimiser and loss on the train output, and
    ``train_on_batch`` per step.

    The training model is a second functional model over the same layers whose only output is the train
    output in canonical layout, so the loss is exactly the workload's (no loss on other outputs). One
    ``train_on_batch`` on zeros in build traces and compiles the step (``compile_s``; jax and tensorflow)
    and builds the optimiser; the weights and optimiser variables are then restored, so the first real
    step starts from the canonical weights with fresh optimiser state.
    """
    from suite.targets.common.optables import lookup
    from suite.targets.common.train_map import CanonicalMap, index_weights
    from suite.training import label_shape

    backend = ctx.info.options.backend
    wl = ctx.workload
    spec = wl.train
    keras, hooks = setup(ctx)  # torch on CUDA: the memory peak is reset here, so it reports this cell
    kg = graph(keras, wl, ctx.shapes)
    full = kg.model
    paths = [v.path for v in full.trainable_variables]
    if len(set(paths)) != len(paths):
        raise RuntimeError(f"keras variable paths are not unique: {paths}")
    # The same mapping applied to index weights says where each native element came from.
    for lyr, arrays in kg.assign_for(index_weights(wl, ctx.weights)):
        lyr.set_weights(arrays)
    cmap = CanonicalMap(wl, ctx.weights, {v.path: v.numpy() for v in full.trainable_variables})
    initial = kg.assign_for(ctx.weights)
    for lyr, arrays in initial:
        lyr.set_weights(arrays)

    out = full.outputs[spec.output_index]
    if kg.output_nhwc[spec.output_index]:  # the loss reads the canonical layout (class axis, label order)
        out = keras.ops.transpose(out, NHWC_TO_NCHW)
    model = keras.Model(inputs=full.inputs, outputs=out, name=f"{wl.name}_train")
    loss_fn = loss(keras, wl)
    optimizer = lookup(OPTIMIZERS, spec.optimizer["kind"], "keras", "optimiser table")(keras, spec.optimizer, backend)
    model.compile(optimizer=optimizer, loss=loss_fn)  # jit_compile: Keras' "auto"
    train_paths = [v.path for v in model.trainable_variables]

    convert = input_converter(keras, wl, kg.input_nhwc)
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

    grad_fn = gradient_fn(keras, backend, model, loss_fn)

    def step(prepared):
        return model.train_on_batch(*prepared, return_dict=False)  # the loss before the update, a float

    def synchronize(_loss):
        # train_on_batch already returns a Python float (Keras converts its logs), which waits for the
        # step's executable / graph / stream on the CPU; on a device, wait for the parameter updates too
        # (jax syncs on the arrays it is given, tensorflow and torch on the whole device).
        if ctx.device != "cpu":
            hooks.synchronize([v.value for v in model.trainable_variables])

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
        layout=LAYOUT + f"model.compile(jit_compile={model.jit_compile}) + train_on_batch ({kind})",
        versions=versions(keras, backend),
        compile_s=compile_s if backend != "torch" or model.jit_compile else None,
        device_memory=hooks.peak_memory,
        reset_peak_memory=hooks.reset_peak_memory,
    )
