"""Keras 3 target (``keras[jax]``, ``keras[tensorflow]``, ``keras[torch]``): one model definition, three backends.

The workload graph becomes one functional ``keras.Model`` built from Keras layers and ``keras.ops``
through the op table (:mod:`suite.targets.keras.ops`: NHWC layout tracking, the backend workarounds),
with weights mapped by the weight table (:mod:`suite.targets.keras.weights`, which documents Keras'
native layouts); both are looked up at build time. The same code runs on every backend. The backend is
fixed per worker process: the scheduler starts one worker per family (``keras-jax``,
``keras-tensorflow``, ``keras-torch``) and :mod:`suite.targets.keras.runtime` sets ``KERAS_BACKEND`` (and
``KERAS_HOME``, so that Keras writes its ``keras.json`` into the suite's cache rather than ``~/.keras``)
before ``keras`` is imported. :func:`setup` refuses to run if the imported backend is not the one the
target names (``info.options.backend``).

Compiled the idiomatic way per backend (recorded in ``layout``):

* jax: ``jax.jit`` of ``model.stateless_call(trainable, non_trainable, inputs, training=False)``,
  lowered and compiled ahead of time in build (``compile_s``); variables are jit arguments, not
  constants folded into the executable.
* tensorflow: ``tf.function(model(inputs, training=False))`` with a fixed input signature, traced in
  build (``compile_s``); no XLA (``jit_compile=False``).
* torch: eager ``model(inputs, training=False)`` under ``torch.inference_mode`` (nothing to compile).

Device, sync and peak memory are the backend's runtime hooks (:func:`suite.targets.keras.runtime.
device_hooks`). Train mode (``build_train``) is :mod:`suite.targets.keras.train`; there is no Keras export
route (:mod:`suite.targets.keras.export`). A ``source: {framework: keras}`` workload is the user's own model
(:mod:`suite.sources.keras`), compiled the same way.
"""
from __future__ import annotations

import importlib
import os
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from suite.targets.base import Built, BuildContext
from suite.targets.common.nhwc import NCHW_TO_NHWC, NHWC_TO_NCHW, Ops, Tracker, Val
from suite.targets.common.optables import lookup
from suite.targets.keras import runtime
from suite.targets.keras.ops import OPS, UNSUPPORTED, Graph
from suite.targets.keras.weights import WEIGHTS

COMPILED = {"jax": "jax.jit(stateless_call), AOT-compiled",
            "tensorflow": "tf.function(jit_compile=False)",
            "torch": "eager, torch.inference_mode"}
LAYOUT = ("channels_last NHWC/HWIO; depthwise (kh,kw,C,m); dense (in,out); MHA (D,h,D/h); "
          "lstm (F,4U) gates ifco; ")


def unsupported(workload, info) -> str | None:
    """Every op of workloads/README.md maps to a Keras layer or keras.ops on all three backends
    (``ops.UNSUPPORTED`` is empty)."""
    for node in workload.nodes:
        if node.op in UNSUPPORTED:
            return f"op {node.op}: {UNSUPPORTED[node.op]}"
    return None


@dataclass
class KerasGraph:
    """The functional model of a workload and how to give it weights.

    Attributes:
        model: the functional ``keras.Model`` (outputs in the native layout).
        input_nhwc / output_nhwc: per model input / output, whether it is NHWC (rank-4 float images).
        assign_for: canonical weights -> [(layer, [arrays])] to be given to ``layer.set_weights`` (the
            same mapping serves the real weights and, in train mode, the index weights of
            suite.targets.common.train_map). Reads ``weights.WEIGHTS`` at call time.
    """

    model: object
    input_nhwc: list
    output_nhwc: list
    assign_for: Callable


def graph(keras, workload, shapes) -> KerasGraph:
    """Walks the workload graph into a functional keras.Model through the op table."""
    o = keras.ops
    g = Graph(Tracker(Ops(o.transpose, o.softmax, o.add, o.multiply, o.concatenate)), shapes,
              keras.backend.backend())
    steps = [(node, lookup(OPS, node.op, "keras")) for node in workload.nodes]

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
    for node, fn in steps:
        env[node.name] = fn(keras, g, node, [env[s] for s in node.inputs])
    outs = [env[name] for name in workload.outputs]
    model = keras.Model(inputs=inputs, outputs=[v.t for v in outs], name=workload.name)

    def assign_for(w):
        return [(lyr, lookup(WEIGHTS, node.op, "keras", "weight table")(w[node.name], node.attrs))
                for lyr, node in g.placed]

    return KerasGraph(model, input_nhwc, [v.nhwc for v in outs], assign_for)


def import_keras(backend: str):
    """``import keras``, checking that this worker runs the backend the target wants."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up logs quiet
    import keras

    if keras.backend.backend() != backend:
        raise RuntimeError(f"keras runs backend {keras.backend.backend()!r} in this worker, target wants "
                           f"{backend!r}: KERAS_BACKEND must be set before keras is imported "
                           f"(suite.profiles.worker_env does it for the keras-{backend} family)")
    return keras


def setup(ctx: BuildContext):
    """(keras, device hooks) for the cell: checks the worker's backend, then the backend's device hooks
    (torch: float32 matmuls pinned, no TF32)."""
    backend = ctx.info.options.backend
    keras = import_keras(backend)
    return keras, runtime.device_hooks(backend, ctx.device)


def input_converter(keras, workload, input_nhwc):
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


def versions(keras, backend) -> dict[str, str]:
    return {"keras": keras.__version__, backend: importlib.import_module(backend).__version__}


def _compile(model, backend, example):
    """Returns (fn(list of tensors) -> list of outputs, compile_s) per the backend's idiom."""
    if backend == "jax":
        import jax

        trainable = [v.value for v in model.trainable_variables]
        frozen = [v.value for v in model.non_trainable_variables]

        def forward(tv, ntv, xs):
            return model.stateless_call(tv, ntv, xs, training=False)[0]

        t0 = time.perf_counter()
        compiled = jax.jit(forward).lower(trainable, frozen, example).compile()
        compile_s = time.perf_counter() - t0
        return (lambda xs: compiled(trainable, frozen, xs)), compile_s
    if backend == "tensorflow":
        import tensorflow as tf

        sig = [tf.TensorSpec(x.shape, x.dtype) for x in example]
        fn = tf.function(lambda *xs: model(list(xs), training=False), input_signature=sig, jit_compile=False)
        t0 = time.perf_counter()
        fn.get_concrete_function()
        compile_s = time.perf_counter() - t0
        return (lambda xs: fn(*xs)), compile_s
    import torch

    def run(xs):
        with torch.inference_mode():
            return model(xs, training=False)

    return run, None


def build(ctx: BuildContext) -> Built:
    """Builds the cell's functional keras.Model, sets its weights, and compiles it per the backend."""
    backend = ctx.info.options.backend
    keras, hooks = setup(ctx)
    # No keras.utils.set_random_seed: it imports tensorflow to seed it too (TF must stay out of the
    # torch and jax workers), and every initialiser is overwritten by set_weights below anyway.
    if ctx.workload.source is not None:  # a keras source: its own model, the weights every backend loads
        from suite.sources.keras import native_model

        kg = KerasGraph(native_model(ctx.workload, keras, ctx.shapes), [False] * len(ctx.workload.inputs),
                        [False] * len(ctx.workload.outputs), None)
    else:
        kg = graph(keras, ctx.workload, ctx.shapes)
        for lyr, arrays in kg.assign_for(ctx.weights):
            lyr.set_weights(arrays)  # checks count and shapes against the layer's own weight order

    prepare = input_converter(keras, ctx.workload, kg.input_nhwc)
    example = prepare({s.name: np.zeros(ctx.shapes[s.name]) for s in ctx.workload.inputs})
    fn, compile_s = _compile(kg.model, backend, example)

    def run(prepared):
        out = fn(prepared)
        return tuple(out) if isinstance(out, (list, tuple)) else (out,)

    def to_numpy(outputs):
        return [np.transpose(a, NHWC_TO_NCHW) if flag else a
                for a, flag in zip((keras.ops.convert_to_numpy(o) for o in outputs), kg.output_nhwc)]

    return Built(prepare=prepare, run=run, to_numpy=to_numpy, synchronize=hooks.synchronize,
                 layout=LAYOUT + COMPILED[backend], versions=versions(keras, backend), compile_s=compile_s,
                 device_memory=hooks.peak_memory)
