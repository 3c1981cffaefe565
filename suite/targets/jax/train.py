"""JAX training step (``build_train``) of ``jax:jit``.

The idiomatic JAX loop: a pure ``train_step(params, opt_state, constants, inputs, labels) -> (params,
opt_state, loss)`` jitted with params and opt_state donated, optax for the optimiser
(:func:`make_optimizer`). ``params`` holds the trainable leaves of the inference pytree
(:mod:`suite.targets.jax.weights`); batch norm's moving statistics are ``constants`` (Flax's separate
``batch_stats`` collection, :func:`split_trainable`), neither differentiated nor updated, and batch norm
normalises with the batch statistics. Gradients and parameters go back to the canonical layout through
:mod:`suite.targets.common.train_map` (the weight table applied once more to index weights).
"""
from __future__ import annotations

import time

import numpy as np

from suite.targets.base import BuildContext, BuiltTrain
from suite.targets.common.nhwc import NHWC_TO_NCHW
from suite.targets.jax import runtime
from suite.targets.jax.model import LAYOUT, Inputs, make_apply
from suite.targets.jax.weights import native_params

FROZEN = {"batch_norm": ("mean", "var")}  # native names of the moving statistics: constants in a step


def split_trainable(workload, params) -> tuple[dict, dict]:
    """(trainable, constants) halves of the params pytree, as Flax keeps ``params`` and ``batch_stats``."""
    ops = {n.name: n.op for n in workload.nodes}
    train, const = {}, {}
    for node, ps in params.items():
        for k, v in ps.items():
            (const if k in FROZEN.get(ops[node], ()) else train).setdefault(node, {})[k] = v
    return train, const


def make_loss(workload, nhwc_in: set[str]):
    """``loss(trainable, constants, inputs, labels) -> scalar`` on the train output in canonical layout."""
    import jax.numpy as jnp
    import optax

    from suite.training import classes_axis

    spec = workload.train
    out_nhwc: list[bool] = []
    apply = make_apply(workload, nhwc_in, out_nhwc, training=True)
    idx, axis = spec.output_index, classes_axis(workload)

    def loss(train, const, inputs, labels):
        params = {n: {**const.get(n, {}), **train.get(n, {})} for n in {*train, *const}}
        y = apply(params, inputs)[idx]
        y = jnp.transpose(y, NHWC_TO_NCHW) if out_nhwc[idx] else y  # flag set by the trace just above
        if spec.loss == "softmax_cross_entropy":
            return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(y, labels, axis=axis))
        return jnp.mean(jnp.square(y - labels))

    return loss


def make_optimizer(config):
    """The optax transformation of ``workload.train.optimizer``; both follow suite.training.Optimizer:
    sgd's trace is ``buf = m * buf + g`` with update ``g + m * buf`` (nesterov) or ``buf``; adam adds eps
    outside the square root of the bias-corrected second moment (eps_root = 0)."""
    import optax

    if config["kind"] == "sgd":
        return optax.sgd(config["learning_rate"], momentum=config["momentum"] or None,
                         nesterov=config["nesterov"])
    return optax.adam(config["learning_rate"], b1=config["beta_1"], b2=config["beta_2"], eps=config["epsilon"])


def build_train(ctx: BuildContext) -> BuiltTrain:
    """A jitted, donated ``train_step(params, opt_state, constants, inputs, labels)`` compiled ahead of
    time; the step keeps the new params and optimiser state, as a training loop does."""
    import jax
    import optax

    from suite.targets.common.train_map import CanonicalMap, index_weights
    from suite.training import flatten, label_shape

    wl = ctx.workload
    device = runtime.device(ctx.device)
    io = Inputs(wl, ctx.shapes)
    train, const = split_trainable(wl, jax.device_put(native_params(wl, ctx.weights), device))
    # The same mapping applied to index weights says where each native element came from.
    index, _ = split_trainable(wl, native_params(wl, index_weights(wl, ctx.weights)))
    cmap = CanonicalMap(wl, ctx.weights, flatten(index))

    loss_fn = make_loss(wl, io.nhwc)
    opt = make_optimizer(wl.train.optimizer)

    def train_step(params, opt_state, constants, inputs, labels):
        loss, grads = jax.value_and_grad(loss_fn)(params, constants, inputs, labels)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    label_dtype = np.int32 if wl.train.loss == "softmax_cross_entropy" else np.float32  # no x64 in jax
    label_spec = jax.ShapeDtypeStruct(label_shape(wl, ctx.params), label_dtype,
                                      sharding=jax.sharding.SingleDeviceSharding(device))
    state = {"params": train, "opt": jax.device_put(opt.init(train), device)}
    t0 = time.perf_counter()
    # params and opt_state are donated: XLA updates them in place, and the old arrays are never read again.
    compiled = (jax.jit(train_step, donate_argnums=(0, 1))
                .lower(state["params"], state["opt"], const, io.specs(jax, device), label_spec).compile())
    compile_s = time.perf_counter() - t0
    # Verification only (not timed, not in compile_s); reads state["params"] without donating it.
    grad_fn = jax.jit(jax.grad(loss_fn))

    def prepare(inputs, labels):
        return jax.device_put((io.host(inputs), np.ascontiguousarray(labels, dtype=label_dtype)), device)

    def step(prepared):
        state["params"], state["opt"], loss = compiled(state["params"], state["opt"], const, *prepared)
        return loss

    def synchronize(loss):
        runtime.synchronize((loss, state["params"]))

    def to_canonical(tree):
        return cmap.to_canonical(flatten(jax.device_get(tree)))

    return BuiltTrain(
        prepare=prepare,
        step=step,
        loss_value=lambda loss: float(loss),
        gradients=lambda prepared: to_canonical(grad_fn(state["params"], const, *prepared)),
        parameters=lambda: to_canonical(state["params"]),
        synchronize=synchronize,
        layout=LAYOUT,
        versions={**runtime.versions(), "optax": optax.__version__},
        compile_s=compile_s,
        device_memory=lambda: runtime.peak_memory(device),
        # jax exposes no reset of the allocator's peak: device_memory reports the peak since start.
        reset_peak_memory=None,
    )
