"""JAX target (``jax:jit``): a pure ``apply(params, inputs)`` over a params pytree, compiled ahead of time.

The graph is walked node by node through the op table (:mod:`suite.targets.jax.ops`: NHWC layout tracking,
one function per op) over the params pytree mapped by the weight table (:mod:`suite.targets.jax.weights`,
which documents JAX's native layouts), both looked up at build time. Rank-4 float inputs read by a spatial
op are fed NHWC (:func:`nhwc_inputs`) and NHWC outputs are made NCHW in ``to_numpy``, both outside anything
timed. :func:`make_apply`, :func:`nhwc_inputs` and :class:`Inputs` are the public builder the exporters
(:mod:`suite.targets.jax.export`) and training (:mod:`suite.targets.jax.train`) share. A source: workload (a Flax
NNX model, :mod:`suite.sources.flax`) has no graph: :func:`make_source_apply` takes the place of :func:`make_apply`
and its state that of the params, in the model's own layout (no input or output is NHWC).
"""
from __future__ import annotations

import time

import numpy as np

from suite.targets.base import Built, BuildContext
from suite.targets.common.nhwc import NCHW_TO_NHWC, NHWC_TO_NCHW, Ops, Tracker, Val
from suite.targets.common.optables import lookup
from suite.targets.jax import runtime
from suite.targets.jax.ops import OPS, UNSUPPORTED, Graph, native
from suite.targets.jax.weights import native_params

LAYOUT = "NHWC/HWIO"
_SPATIAL_OPS = ("conv2d", "max_pool2d", "avg_pool2d")  # ops that want NHWC input


def unsupported(workload, info) -> str | None:
    """Every op of the catalogue is expressible with jax.lax / jax.numpy (``ops.UNSUPPORTED`` is empty)."""
    for node in workload.nodes:
        if node.op in UNSUPPORTED:
            return f"op {node.op}: {UNSUPPORTED[node.op]}"
    return None


def nhwc_inputs(workload, shapes) -> set[str]:
    """Rank-4 float inputs read by a spatial op are fed NHWC, as a Flax image model would take them."""
    floats = {s.name for s in workload.inputs if s.dtype == "float32"}
    return {n.inputs[0] for n in workload.nodes
            if n.op in _SPATIAL_OPS and n.inputs[0] in floats and len(shapes[n.inputs[0]]) == 4}


def make_apply(workload, nhwc_in: set[str], out_nhwc: list, training: bool = False):
    """Returns ``apply(params, inputs) -> tuple`` of native outputs.

    Args:
        nhwc_in: the inputs that arrive NHWC (:func:`nhwc_inputs`).
        out_nhwc: filled with each output's layout flag when apply is traced (the flags are Python decisions
            fixed at trace time, so to_numpy can undo them without a second graph walk).
        training: batch_norm on batch statistics (see :class:`suite.targets.jax.ops.Graph`).
    """
    jx = native()
    jnp = jx.jnp
    g = Graph(Tracker(Ops(jnp.transpose, jx.jax.nn.softmax, jnp.add, jnp.multiply, jnp.concatenate)), training)
    # Looked up now, not while tracing: an op missing from the table is a clear error at build time.
    steps = [(node, lookup(OPS, node.op, "jax")) for node in workload.nodes]

    def apply(params, inputs):
        values = {name: Val(x, name in nhwc_in) for name, x in inputs.items()}
        for node, fn in steps:
            values[node.name] = fn(jx, g, node, [values[s] for s in node.inputs], params.get(node.name, {}))
        out_nhwc[:] = [values[o].nhwc for o in workload.outputs]
        return tuple(values[o].t for o in workload.outputs)

    return apply


def make_source_apply(workload, out_nhwc: list):
    """A source: workload's ``(apply(params, inputs) -> tuple, params)``: the Flax NNX model as a pure function
    over its state (:func:`suite.sources.flax.pure_apply`). Inputs and outputs are in the model's own layout,
    so every output is flagged not NHWC."""
    from suite.sources.flax import pure_apply

    fn, state = pure_apply(workload)
    names = [s.name for s in workload.inputs]
    out_nhwc[:] = [False] * len(workload.outputs)
    return (lambda params, inputs: fn(params, *(inputs[n] for n in names))), state


class Inputs:
    """The workload inputs' native layout and dtype: NHWC for images fed to spatial ops, int32 ids."""

    def __init__(self, workload, shapes):
        self.shapes = shapes
        self.nhwc = nhwc_inputs(workload, shapes)
        self.dtypes = {s.name: s.dtype for s in workload.inputs}

    def dtype(self, name):
        # No x64 in JAX by default: ids are int32 on device (int64 would be silently truncated anyway).
        return np.float32 if self.dtypes[name] == "float32" else np.int32

    def shape(self, name) -> tuple[int, ...]:
        """The input's native shape (NHWC where it is fed NHWC)."""
        shape = tuple(self.shapes[name])
        return tuple(shape[i] for i in NCHW_TO_NHWC) if name in self.nhwc else shape

    def specs(self, jax, device=None) -> dict:
        """name -> ShapeDtypeStruct in the native layout, placed on ``device`` when given."""
        sharding = jax.sharding.SingleDeviceSharding(device) if device is not None else None
        return {name: jax.ShapeDtypeStruct(self.shape(name), self.dtype(name), sharding=sharding)
                for name in self.dtypes}

    def host(self, inputs) -> dict:
        arrays = {}
        for name in self.dtypes:
            x = np.asarray(inputs[name])
            x = x.transpose(NCHW_TO_NHWC) if name in self.nhwc else x
            arrays[name] = np.ascontiguousarray(x, dtype=self.dtype(name))
        return arrays


def to_canonical(outputs, out_nhwc) -> list[np.ndarray]:
    """Native outputs -> numpy arrays in the canonical layout (NHWC ones transposed back to NCHW)."""
    return [np.asarray(y).transpose(NHWC_TO_NCHW) if flag else np.asarray(y) for y, flag in zip(outputs, out_nhwc)]


def build(ctx: BuildContext) -> Built:
    """Maps weights, device_puts them, and compiles ``apply`` ahead of time for the cell's shapes."""
    import jax

    wl = ctx.workload
    device = runtime.device(ctx.device)
    io = Inputs(wl, ctx.shapes)
    out_nhwc: list[bool] = []
    if wl.source is not None:  # a Flax NNX model (suite.sources.flax): its state is the params
        apply, host_params = make_source_apply(wl, out_nhwc)
    else:
        apply, host_params = make_apply(wl, io.nhwc, out_nhwc), native_params(wl, ctx.weights)
    params = jax.device_put(host_params, device)
    t0 = time.perf_counter()
    compiled = jax.jit(apply).lower(params, io.specs(jax, device)).compile()
    compile_s = time.perf_counter() - t0

    return Built(
        prepare=lambda inputs: jax.device_put(io.host(inputs), device),
        run=lambda prepared: compiled(params, prepared),
        to_numpy=lambda outputs: to_canonical(outputs, out_nhwc),
        synchronize=runtime.synchronize,
        layout=LAYOUT,
        versions=runtime.versions(),
        compile_s=compile_s,
        device_memory=lambda: runtime.peak_memory(device),
    )
