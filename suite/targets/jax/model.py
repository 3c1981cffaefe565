"""JAX target (``jax:jit``): a pure ``apply(params, inputs)`` over a params pytree, compiled ahead of time.

Native layout, as a Flax user would write it:

- images are **NHWC**, conv kernels **HWIO** (``flax.linen.Conv``). Every value in the graph carries a
  layout flag; rank-4 values produced by conv/pool (and inputs that feed them) are NHWC, and are turned
  back into canonical NCHW only where the layout changes the meaning (flatten, reshape, transpose,
  matmul, softmax, mean, layer_norm, dense, ...) and in ``to_numpy``. Channel ops (batch_norm,
  global_avg_pool, concat on axis 1) work on NHWC directly by moving the axis.
- dense ``kernel (Din, units)`` as canonical (``flax.linen.Dense``); batch_norm ``scale, bias, mean, var``
  (``flax.linen.BatchNorm``); layer_norm ``scale, bias``; embedding ``embedding (vocab, dim)``.
- attention as ``flax.linen.MultiHeadDotProductAttention``'s DenseGeneral kernels: query/key/value
  ``(D, heads, D/heads)`` with bias ``(heads, D/heads)``, out ``(heads, D/heads, D)`` with bias ``(D)``.
- lstm as ``flax.linen.LSTMCell``: one kernel per gate, input ``i{i,f,g,o} (F, U)`` without bias and
  hidden ``h{i,f,g,o} (U, U)`` carrying the bias (stored here as ``b{gate}``). Canonical column blocks are
  in order i, f, g, o; apply re-fuses them in that order so one matmul per step serves all four gates.

Dots and convs pass ``Precision.HIGHEST``: on GPU/TPU the default is reduced precision (TF32/bf16 passes),
which would fail float32 tolerances for reasons that are not porting bugs.

Train mode (``build_train``): the idiomatic JAX loop, a pure ``train_step(params, opt_state, constants,
inputs, labels) -> (params, opt_state, loss)`` jitted with params and opt_state donated, optax for the
optimiser. ``params`` holds the trainable leaves of the same pytree; batch norm's moving statistics are
``constants`` (Flax's separate ``batch_stats`` collection), neither differentiated nor updated, and
batch norm normalises with the batch statistics. Gradients and parameters go back to the canonical
layout through :mod:`suite.targets.common.train_map` (``map_weights`` applied once more to index weights).
"""
from __future__ import annotations

import importlib.metadata
import math
import time

import numpy as np

from suite.ops import same_padding
from suite.targets.base import Built, BuildContext, BuiltTrain

LAYOUT = "NHWC/HWIO"
GATES = ("i", "f", "g", "o")  # canonical gate-block order (workloads/README.md)
_SPATIAL_OPS = ("conv2d", "max_pool2d", "avg_pool2d")  # ops that want NHWC input
_TO_NHWC = (0, 2, 3, 1)
_TO_NCHW = (0, 3, 1, 2)
_NCHW_AXIS_IN_NHWC = {0: 0, 1: 3, 2: 1, 3: 2}  # canonical axis -> its position in NHWC


def unsupported(workload, info) -> str | None:
    """Every op of the catalogue is expressible with jax.lax / jax.numpy."""
    return None


# ---- weight mapping: canonical float64 -> native float32 (numpy; device_put happens in build) ----

def _f32(a) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32)


def map_weights(workload, weights, shapes, inject_bug: str | None = None) -> dict:
    """Canonical weights -> the params pytree (node -> name -> float32 array, native layout)."""
    params = {}
    for node in workload.nodes:
        w, a = weights.get(node.name), node.attrs
        if not w:
            continue
        if node.op == "conv2d":  # OIHW -> HWIO; with groups, I is C/groups as lax expects
            p = {"kernel": _f32(w["kernel"].transpose(2, 3, 1, 0))}
            if "bias" in w:
                p["bias"] = _f32(w["bias"])
        elif node.op == "batch_norm":
            p = {"scale": _f32(w["gamma"]), "bias": _f32(w["beta"]),
                 "mean": _f32(w["moving_mean"]), "var": _f32(w["moving_var"])}
        elif node.op == "layer_norm":
            p = {"scale": _f32(w["gamma"]), "bias": _f32(w["beta"])}
        elif node.op == "embedding":
            p = {"embedding": _f32(w["table"])}
        elif node.op == "attention":
            d = shapes[node.inputs[0]][-1]
            h = a["num_heads"]
            hd = d // h
            # Output column index is head * hd + j (the reference's reshape(n, l, h, hd)), so a
            # row-major reshape of the out axis gives (heads, hd); wo's *input* axis splits the same way.
            p = {}
            for name, key in (("query", "q"), ("key", "k"), ("value", "v")):
                p[f"{name}_kernel"] = _f32(w[f"w{key}"].reshape(d, h, hd))
                p[f"{name}_bias"] = _f32(w[f"b{key}"].reshape(h, hd))
            p["out_kernel"] = _f32(w["wo"].reshape(h, hd, d))
            p["out_bias"] = _f32(w["bo"])
        elif node.op == "lstm":
            u = a["units"]
            # Test-only bug: read the blocks as i, g, f, o (a classic gate-order porting mistake).
            order = ("i", "g", "f", "o") if inject_bug == "lstm_gate_order" else GATES
            p = {}
            for k, gate in enumerate(order):
                cols = slice(k * u, (k + 1) * u)
                p[f"i{gate}"] = _f32(w["kernel"][:, cols])
                p[f"h{gate}"] = _f32(w["recurrent_kernel"][:, cols])
                p[f"b{gate}"] = _f32(w["bias"][cols])
        else:  # dense: (Din, units) is already Flax's layout
            p = {k: _f32(v) for k, v in w.items()}
        params[node.name] = p
    return params


def nhwc_inputs(workload, shapes) -> set[str]:
    """Rank-4 float inputs read by a spatial op are fed NHWC, as a Flax image model would take them."""
    floats = {s.name for s in workload.inputs if s.dtype == "float32"}
    return {n.inputs[0] for n in workload.nodes
            if n.op in _SPATIAL_OPS and n.inputs[0] in floats and len(shapes[n.inputs[0]]) == 4}


# ---- the model: op implementations over (array, is_nhwc) values ----

def _ops(training: bool = False):
    """Op table, built on first use so that jax is imported only inside build.

    ``training``: batch_norm normalises with the batch statistics (a training step) instead of the
    moving ones; every other op is the same in both modes.
    """
    import jax
    import jax.numpy as jnp
    from jax import lax

    hi = lax.Precision.HIGHEST

    def canon(v):
        x, nhwc = v
        return jnp.transpose(x, _TO_NCHW) if nhwc else x

    def nhwc(v):
        x, is_nhwc = v
        return x if is_nhwc else jnp.transpose(x, _TO_NHWC)

    def pads(x, k, s, d, padding):
        # Explicit TF 'same' pairs per spatial dim: lax's "SAME" string agrees today, but the suite's
        # contract is the rule in suite/ops.py, so we compute it rather than trust a convention.
        if padding == "valid":
            return [(0, 0), (0, 0)]
        return [same_padding(x.shape[1 + i], k[i], s[i], d[i])[1:] for i in range(2)]

    def conv2d(p, v, filters, kernel_size, strides, dilation, padding, groups, use_bias):
        x = nhwc(v)
        y = lax.conv_general_dilated(
            x, p["kernel"], window_strides=strides, padding=pads(x, kernel_size, strides, dilation, padding),
            rhs_dilation=dilation, dimension_numbers=("NHWC", "HWIO", "NHWC"),
            feature_group_count=groups, precision=hi)
        return (y + p["bias"] if use_bias else y), True

    def _pool(x, init, op, pool_size, strides, padding):
        pp = pads(x, pool_size, strides, (1, 1), padding)
        return lax.reduce_window(x, init, op, (1, *pool_size, 1), (1, *strides, 1), [(0, 0), *pp, (0, 0)])

    def max_pool2d(p, v, pool_size, strides, padding):
        x = nhwc(v)
        return _pool(x, -jnp.inf, lax.max, pool_size, strides, padding), True

    def avg_pool2d(p, v, pool_size, strides, padding):
        x = nhwc(v)
        total = _pool(x, 0.0, lax.add, pool_size, strides, padding)
        # Divide by the number of real (unpadded) positions per window: TensorFlow's rule. XLA folds
        # this count to a constant since it depends on shapes only.
        ones = jnp.ones((1, *x.shape[1:3], 1), x.dtype)
        return total / _pool(ones, 0.0, lax.add, pool_size, strides, padding), True

    def global_avg_pool(p, v):
        x, is_nhwc = v
        return jnp.mean(x, axis=(1, 2) if is_nhwc else (2, 3)), False

    def batch_norm(p, v, epsilon):
        x, is_nhwc = v
        # Channels sit last in NHWC and in (N, C); on canonical NCHW they broadcast from axis 1.
        shape = (-1,) if is_nhwc or x.ndim == 2 else (-1, 1, 1)
        if training:  # batch statistics: mean and biased variance over every axis but the channels
            axes = tuple(range(x.ndim - 1)) if is_nhwc else (0, *range(2, x.ndim))
            mean = jnp.mean(x, axis=axes, keepdims=True)
            var = jnp.mean(jnp.square(x - mean), axis=axes, keepdims=True)  # two-pass, as layer_norm
            return (x - mean) * lax.rsqrt(var + epsilon) * p["scale"].reshape(shape) + p["bias"].reshape(shape), is_nhwc
        scale = (p["scale"] * lax.rsqrt(p["var"] + epsilon)).reshape(shape)
        return (x - p["mean"].reshape(shape)) * scale + p["bias"].reshape(shape), is_nhwc

    def layer_norm(p, v, epsilon):
        x = canon(v)
        mu = jnp.mean(x, axis=-1, keepdims=True)
        var = jnp.mean(jnp.square(x - mu), axis=-1, keepdims=True)  # two-pass: biased, no cancellation
        return (x - mu) * lax.rsqrt(var + epsilon) * p["scale"] + p["bias"], False

    def elementwise(fn):
        return lambda p, v: (fn(v[0]), v[1])  # layout-agnostic: keep the layout

    def binary(fn):
        def op(p, a, b):
            if (a[1] or b[1]) and a[0].ndim == b[0].ndim == 4:  # same permutation keeps broadcasting
                return fn(nhwc(a), nhwc(b)), True
            return fn(canon(a), canon(b)), False
        return op

    def concat(p, *vs, axis):
        rank = vs[0][0].ndim
        ax = axis % rank
        if rank == 4 and any(v[1] for v in vs):
            return jnp.concatenate([nhwc(v) for v in vs], axis=_NCHW_AXIS_IN_NHWC[ax]), True
        return jnp.concatenate([canon(v) for v in vs], axis=ax), False

    def dense(p, v, units, use_bias):
        y = jnp.matmul(canon(v), p["kernel"], precision=hi)
        return (y + p["bias"] if use_bias else y), False

    def matmul(p, a, b, transpose_b):
        y = canon(b)
        return jnp.matmul(canon(a), jnp.swapaxes(y, -1, -2) if transpose_b else y, precision=hi), False

    def embedding(p, v, vocab_size, dim):
        return jnp.take(p["embedding"], v[0], axis=0), False

    def attention(p, v, num_heads, causal):
        x = canon(v)
        proj = {n: jnp.einsum("nld,dhk->nlhk", x, p[f"{n}_kernel"], precision=hi) + p[f"{n}_bias"]
                for n in ("query", "key", "value")}
        hd = x.shape[-1] // num_heads
        s = jnp.einsum("nqhk,nshk->nhqs", proj["query"], proj["key"], precision=hi) / math.sqrt(hd)
        if causal:  # -inf as the reference; the diagonal is always kept, so no row is all -inf
            l = x.shape[1]
            s = jnp.where(jnp.tril(jnp.ones((l, l), bool)), s, -jnp.inf)
        o = jnp.einsum("nhqs,nshk->nqhk", jax.nn.softmax(s, axis=-1), proj["value"], precision=hi)
        return jnp.einsum("nqhk,hkd->nqd", o, p["out_kernel"], precision=hi) + p["out_bias"], False

    def lstm(p, v, units, return_sequences):
        x = canon(v)
        # Re-fuse the per-gate kernels in i, f, g, o order (what flax's OptimizedLSTMCell does) and
        # project every time step's input in one matmul outside the recurrence.
        wi = jnp.concatenate([p[f"i{g}"] for g in GATES], axis=1)
        wh = jnp.concatenate([p[f"h{g}"] for g in GATES], axis=1)
        b = jnp.concatenate([p[f"b{g}"] for g in GATES])
        zx = jnp.einsum("ntf,fg->tng", x, wi, precision=hi) + b  # time-major for scan

        def step(carry, z_t):
            h, c = carry
            z = z_t + jnp.matmul(h, wh, precision=hi)
            i, f, g, o = jnp.split(z, 4, axis=-1)
            c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
            h = jax.nn.sigmoid(o) * jnp.tanh(c)
            return (h, c), h

        zeros = jnp.zeros((x.shape[0], units), x.dtype)
        (h, _), hs = lax.scan(step, (zeros, zeros), zx)
        return (jnp.swapaxes(hs, 0, 1) if return_sequences else h), False

    def canonical(fn):
        return lambda p, v, **a: (fn(canon(v), **a), False)

    return {
        "dense": dense, "conv2d": conv2d, "max_pool2d": max_pool2d, "avg_pool2d": avg_pool2d,
        "global_avg_pool": global_avg_pool, "batch_norm": batch_norm, "layer_norm": layer_norm,
        "relu": elementwise(jax.nn.relu), "gelu": elementwise(lambda x: jax.nn.gelu(x, approximate=False)),
        "sigmoid": elementwise(jax.nn.sigmoid), "tanh": elementwise(jnp.tanh),
        "softmax": canonical(lambda x, axis: jax.nn.softmax(x, axis=axis)),
        "add": binary(jnp.add), "multiply": binary(jnp.multiply), "matmul": matmul,
        "reshape": canonical(lambda x, shape: x.reshape((x.shape[0], *shape))),
        "flatten": canonical(lambda x: x.reshape(x.shape[0], -1)),
        "transpose": canonical(lambda x, perm: jnp.transpose(x, perm)),
        "concat": concat,
        "mean": canonical(lambda x, axis, keepdims: jnp.mean(x, axis=tuple(axis), keepdims=keepdims)),
        "embedding": embedding, "attention": attention, "lstm": lstm,
    }


def make_apply(workload, nhwc_in: set[str], out_nhwc: list, training: bool = False):
    """Returns ``apply(params, inputs) -> tuple`` of native outputs.

    ``out_nhwc`` is filled with each output's layout flag when apply is traced (the flags are Python
    decisions fixed at trace time, so to_numpy can undo them without a second graph walk).
    ``training``: batch_norm on batch statistics (see :func:`_ops`).
    """
    ops = _ops(training)

    def apply(params, inputs):
        values = {name: (x, name in nhwc_in) for name, x in inputs.items()}
        for node in workload.nodes:
            args = [values[s] for s in node.inputs]
            values[node.name] = ops[node.op](params.get(node.name, {}), *args, **node.attrs)
        out_nhwc[:] = [values[o][1] for o in workload.outputs]
        return tuple(values[o][0] for o in workload.outputs)

    return apply


def _device(jax, name: str):
    platform = {"cpu": "cpu", "cuda": "gpu", "tpu": "tpu"}[name]
    return jax.devices(platform)[0]


class _Inputs:
    """The workload inputs' native layout and dtype: NHWC for images fed to spatial ops, int32 ids."""

    def __init__(self, jax, workload, shapes, device):
        self.jax, self.device, self.shapes = jax, device, shapes
        self.nhwc = nhwc_inputs(workload, shapes)
        self.dtypes = {s.name: s.dtype for s in workload.inputs}

    def dtype(self, name):
        # No x64 in JAX by default: ids are int32 on device (int64 would be silently truncated anyway).
        return np.float32 if self.dtypes[name] == "float32" else np.int32

    def specs(self) -> dict:
        sharding = self.jax.sharding.SingleDeviceSharding(self.device)
        out = {}
        for name in self.dtypes:
            shape = tuple(self.shapes[name])
            shape = tuple(shape[i] for i in _TO_NHWC) if name in self.nhwc else shape
            out[name] = self.jax.ShapeDtypeStruct(shape, self.dtype(name), sharding=sharding)
        return out

    def host(self, inputs) -> dict:
        arrays = {}
        for name in self.dtypes:
            x = np.asarray(inputs[name])
            x = x.transpose(_TO_NHWC) if name in self.nhwc else x
            arrays[name] = np.ascontiguousarray(x, dtype=self.dtype(name))
        return arrays


def _versions(jax) -> dict[str, str]:
    return {"jax": jax.__version__, "jaxlib": importlib.metadata.version("jaxlib")}


def _device_memory(device):
    def device_memory():
        stats = device.memory_stats()  # None on CPU
        return stats.get("peak_bytes_in_use") if stats else None
    return device_memory


def build(ctx: BuildContext) -> Built:
    """Maps weights, device_puts them, and compiles ``apply`` ahead of time for the cell's shapes."""
    import jax

    wl = ctx.workload
    device = _device(jax, ctx.device)
    io = _Inputs(jax, wl, ctx.shapes, device)
    host = map_weights(wl, ctx.weights, ctx.shapes, None)
    params = jax.device_put(host, device)
    out_nhwc: list[bool] = []
    t0 = time.perf_counter()
    compiled = jax.jit(make_apply(wl, io.nhwc, out_nhwc)).lower(params, io.specs()).compile()
    compile_s = time.perf_counter() - t0

    def to_numpy(outputs):
        return [np.asarray(y).transpose(_TO_NCHW) if flag else np.asarray(y)
                for y, flag in zip(outputs, out_nhwc)]

    return Built(
        prepare=lambda inputs: jax.device_put(io.host(inputs), device),
        run=lambda prepared: compiled(params, prepared),
        to_numpy=to_numpy,
        synchronize=jax.block_until_ready,
        layout=LAYOUT,
        versions=_versions(jax),
        compile_s=compile_s,
        device_memory=_device_memory(device),
    )


# ---- training step (train mode) ----

_FROZEN = {"batch_norm": ("mean", "var")}  # native names of the moving statistics: constants in a step


def split_trainable(workload, params) -> tuple[dict, dict]:
    """(trainable, constants) halves of the params pytree, as Flax keeps ``params`` and ``batch_stats``."""
    ops = {n.name: n.op for n in workload.nodes}
    train, const = {}, {}
    for node, ps in params.items():
        for k, v in ps.items():
            (const if k in _FROZEN.get(ops[node], ()) else train).setdefault(node, {})[k] = v
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
        y = jnp.transpose(y, _TO_NCHW) if out_nhwc[idx] else y  # flag set by the trace just above
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
    bug = None
    device = _device(jax, ctx.device)
    io = _Inputs(jax, wl, ctx.shapes, device)
    train, const = split_trainable(wl, jax.device_put(map_weights(wl, ctx.weights, ctx.shapes, bug), device))
    # The same mapping applied to index weights says where each native element came from.
    index, _ = split_trainable(wl, map_weights(wl, index_weights(wl, ctx.weights), ctx.shapes, bug))
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
                .lower(state["params"], state["opt"], const, io.specs(), label_spec).compile())
    compile_s = time.perf_counter() - t0
    # Verification only (not timed, not in compile_s); reads state["params"] without donating it.
    grad_fn = jax.jit(jax.grad(loss_fn))

    def prepare(inputs, labels):
        return jax.device_put((io.host(inputs), np.ascontiguousarray(labels, dtype=label_dtype)), device)

    def step(prepared):
        state["params"], state["opt"], loss = compiled(state["params"], state["opt"], const, *prepared)
        return loss

    def synchronize(loss):
        jax.block_until_ready((loss, state["params"]))

    def to_canonical(tree):
        return cmap.to_canonical(flatten(jax.device_get(tree)))

    device_memory = _device_memory(device)
    return BuiltTrain(
        prepare=prepare,
        step=step,
        loss_value=lambda loss: float(loss),
        gradients=lambda prepared: to_canonical(grad_fn(state["params"], const, *prepared)),
        parameters=lambda: to_canonical(state["params"]),
        synchronize=synchronize,
        layout=LAYOUT,
        versions={**_versions(jax), "optax": optax.__version__},
        compile_s=compile_s,
        device_memory=device_memory,
        # jax exposes no reset of the allocator's peak: device_memory reports the peak since start.
        reset_peak_memory=None,
    )
