"""JAX exporters: ``jax.export`` (serialised StableHLO) and, through jax2tf, ONNX and TFLite.

The function is the one ``jax:jit`` compiles (:mod:`suite.targets.jax.model`), with the cell's
weights closed over as constants, so the artifact is self-contained. I/O keeps JAX's native layout
(NHWC images where a spatial op reads them); the manifest says which.

jax2tf (``jax.experimental.jax2tf``) only emits *native serialisation* with jax 0.10: the TF graph is
one ``XlaCallModule`` op carrying StableHLO, not TF ops. tf2onnx has no handler for XlaCallModule, and
the TFLite converter only lowers it when StableHLO legalisation succeeds; each exporter here tries
the route and, when the converter refuses, raises :class:`UnsupportedError` naming the converter and
its message (the cell becomes ``unsupported`` with that reason).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from suite.targets.base import BuildContext, UnsupportedError
from suite.targets.jax import runtime
from suite.targets.jax.model import Inputs, make_apply
from suite.targets.jax.weights import native_params


def _closed_fn(ctx: BuildContext):
    """(f(*inputs) -> tuple, input ShapeDtypeStructs, nhwc input flags, output flags list filled on trace)."""
    import jax
    import jax.numpy as jnp

    wl = ctx.workload
    io = Inputs(wl, ctx.shapes)
    params = jax.tree_util.tree_map(jnp.asarray, native_params(wl, ctx.weights))
    out_nhwc: list[bool] = []
    apply = make_apply(wl, io.nhwc, out_nhwc)
    names = [s.name for s in wl.inputs]

    def f(*xs):
        return apply(params, dict(zip(names, xs)))

    specs = io.specs(jax)
    return f, [specs[n] for n in names], [n in io.nhwc for n in names], out_nhwc


def _io(ctx, in_nhwc, out_nhwc):
    # JAX runs without x64: ids are int32 in the artifact.
    return {"inputs": [{"name": s.name, "dtype": "float32" if s.dtype == "float32" else "int32", "nhwc": bool(f)}
                       for s, f in zip(ctx.workload.inputs, in_nhwc)],
            "outputs_nhwc": [bool(f) for f in out_nhwc]}


def to_jax_export(ctx: BuildContext, out_dir: Path) -> dict:
    """``jax.export.export(jax.jit(f))`` serialised to bytes (StableHLO + calling convention)."""
    import jax

    f, specs, in_nhwc, out_nhwc = _closed_fn(ctx)
    exported = jax.export.export(jax.jit(f))(*specs)
    path = out_dir / "model.jax_exported"
    path.write_bytes(exported.serialize())
    return dict(_io(ctx, in_nhwc, out_nhwc), artifact=path.name, layout="NHWC/HWIO; jax.export StableHLO",
                versions=runtime.versions())


def _tf_function(ctx):
    """jax2tf.convert of the closed function as a tf.function with named, static input specs."""
    import tensorflow as tf
    from jax.experimental import jax2tf

    f, specs, in_nhwc, out_nhwc = _closed_fn(ctx)
    tf_specs = [tf.TensorSpec(s.shape, tf.float32 if s.dtype == np.float32 else tf.int32, name=spec.name)
                for s, spec in zip(specs, ctx.workload.inputs)]
    converted = jax2tf.convert(f, with_gradient=False)
    module = tf.Module()
    module.forward = tf.function(lambda *xs: converted(*xs), input_signature=tf_specs, autograph=False)
    concrete = module.forward.get_concrete_function()
    return tf, module, concrete, tf_specs, in_nhwc, out_nhwc


def to_onnx(ctx: BuildContext, out_dir: Path) -> dict:
    """jax2tf -> tf2onnx. Refused (UnsupportedError) when tf2onnx cannot convert jax2tf's graph."""
    import tf2onnx

    from suite.targets.common.convert import check_onnx, first_line, tf_version_key

    tf, module, concrete, tf_specs, in_nhwc, out_nhwc = _tf_function(ctx)
    ops = sorted({op.type for op in concrete.graph.get_operations()} - {"Placeholder", "Identity", "NoOp"})
    path = out_dir / "model.onnx"
    try:
        tf2onnx.convert.from_function(module.forward, input_signature=tf_specs,
                                      opset=ctx.info.options.opset, output_path=str(path))
    except Exception as e:
        raise UnsupportedError(f"jax2tf -> tf2onnx {tf2onnx.__version__} failed on the jax2tf graph "
                               f"(TF ops: {', '.join(ops)}): {first_line(e)}") from e
    check_onnx(path, f"jax2tf + tf2onnx {tf2onnx.__version__}")
    return dict(_io(ctx, in_nhwc, out_nhwc), artifact=path.name, layout="NHWC/HWIO; ONNX (jax2tf + tf2onnx)",
                versions=dict(runtime.versions(), **tf_version_key(), tf2onnx=tf2onnx.__version__))


def to_tflite(ctx: BuildContext, out_dir: Path) -> dict:
    """jax2tf -> TFLite converter (float32). Refused (UnsupportedError) with the converter's message."""
    from suite.targets.common.convert import first_line, tf_version_key

    tf, module, concrete, tf_specs, in_nhwc, out_nhwc = _tf_function(ctx)
    conv = tf.lite.TFLiteConverter.from_concrete_functions([concrete], module)
    try:
        flat = conv.convert()
    except Exception as e:
        raise UnsupportedError(f"jax2tf -> TFLite converter failed: {first_line(e)}") from e
    path = out_dir / "model.tflite"
    path.write_bytes(flat)
    return dict(_io(ctx, in_nhwc, out_nhwc), artifact=path.name, layout="NHWC/HWIO; TFLite (jax2tf)",
                versions=dict(runtime.versions(), **tf_version_key()))
