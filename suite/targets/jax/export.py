"""JAX exporters: ``jax.export`` (serialised StableHLO), ONNX through jax2onnx, TFLite through jax2tf.

The function is the one ``jax:jit`` compiles (:mod:`suite.targets.jax.model`), with the cell's
weights closed over as constants, so the artifact is self-contained. I/O keeps JAX's native layout
(NHWC images where a spatial op reads them); the manifest says which.

ONNX: jax2onnx converts the jaxpr primitive by primitive (no TensorFlow). The earlier route, jax2tf then
tf2onnx, never converted anything with jax 0.10: jax2tf only emits *native serialisation* (the TF graph
is one ``XlaCallModule`` op carrying StableHLO), which tf2onnx has no handler for.

TFLite: jax2tf, whose ``XlaCallModule`` the TFLite converter lowers when StableHLO legalisation succeeds.
Each exporter tries the route and, when the converter refuses, raises :class:`UnsupportedError` naming
the converter and its message (the cell becomes ``unsupported`` with that reason).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from suite.targets.base import BuildContext, UnsupportedError
from suite.targets.jax import runtime
from suite.targets.jax.model import Inputs, make_apply, make_source_apply
from suite.targets.jax.weights import native_params


def _closed_fn(ctx: BuildContext):
    """(f(*inputs) -> tuple, input ShapeDtypeStructs, nhwc input flags, output flags list filled on trace)."""
    import jax
    import jax.numpy as jnp

    wl = ctx.workload
    io = Inputs(wl, ctx.shapes)
    out_nhwc: list[bool] = []
    if wl.source is not None:  # a Flax NNX model (suite.sources.flax): its state closed over as the params
        apply, params = make_source_apply(wl, out_nhwc)
    else:
        apply, params = make_apply(wl, io.nhwc, out_nhwc), native_params(wl, ctx.weights)
    params = jax.tree_util.tree_map(jnp.asarray, params)
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
    # lowered for the CPU platform on any machine: plain StableHLO that IREE compiles for cpu and cuda alike
    exported = jax.export.export(jax.jit(f), platforms=("cpu",))(*specs)
    path = out_dir / "model.jax_exported"
    path.write_bytes(exported.serialize())
    return dict(_io(ctx, in_nhwc, out_nhwc), artifact=path.name, layout="NHWC/HWIO; jax.export StableHLO",
                versions=runtime.versions())


def to_iree(ctx: BuildContext, out_dir: Path) -> dict:
    """``jax.export``'s portable StableHLO (versioned bytecode, stable across jax/IREE version drift, unlike
    ``lower().as_text()``) -> ``iree-compile`` -> ``model.vmfb``. Refused (UnsupportedError) with the
    compiler's diagnostics when it cannot legalize an op."""
    import jax

    from suite.targets.common.convert import iree_artifact

    f, specs, in_nhwc, out_nhwc = _closed_fn(ctx)
    exported = jax.export.export(jax.jit(f))(*specs)
    fields = iree_artifact(out_dir, exported.mlir_module_serialized, "stablehlo", ctx.info.options, ctx.device)
    return {**_io(ctx, in_nhwc, out_nhwc), **fields,
            "layout": "NHWC/HWIO; StableHLO (jax.export) -> " + fields["layout"],
            "versions": dict(runtime.versions(), **fields["versions"])}


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
    """``jax2onnx.to_onnx`` of the closed function (weights as initializers, static shapes, the workload's
    input and output names), opset ``options.opset``; the model is checked by ``onnx.checker``. A primitive
    jax2onnx has no plugin for is a refusal (:class:`UnsupportedError`) naming it."""
    import importlib.metadata

    from jax2onnx import to_onnx as jax2onnx

    from suite.targets.common.convert import check_onnx, first_line

    _import_jax_plugins_only()
    f, specs, in_nhwc, out_nhwc = _closed_fn(ctx)
    version = importlib.metadata.version("jax2onnx")
    path = out_dir / "model.onnx"
    try:
        jax2onnx(f, specs, model_name=ctx.workload.name, opset=ctx.info.options.opset, return_mode="file",
                 output_path=str(path), input_names=[s.name for s in ctx.workload.inputs],
                 output_names=list(ctx.workload.outputs))
    except NotImplementedError as e:  # jax2onnx's word for "no plugin for this primitive"
        raise UnsupportedError(f"jax2onnx {version}: {first_line(e)}") from e
    check_onnx(path, f"jax2onnx {version}")
    return dict(_io(ctx, in_nhwc, out_nhwc), artifact=path.name, layout="NHWC/HWIO; ONNX (jax2onnx)",
                versions=dict(runtime.versions(), jax2onnx=version, onnx=importlib.metadata.version("onnx")))


def _import_jax_plugins_only() -> None:
    """Registers jax2onnx's plugins for JAX primitives, not its Flax / Equinox / example plugins.

    jax2onnx's first conversion imports every module of its plugin tree, and the Equinox and example
    modules build and jit-compile sample models when imported (74 XLA compilations, ~10 of the 14 s the
    first export of a worker took). The suite's functions are plain JAX, so only ``plugins/jax`` (and the
    shared helpers beside it) can apply. Relies on jax2onnx 0.17's plugin loader; with another loader the
    full import runs as before.
    """
    import importlib
    from pathlib import Path

    try:
        from jax2onnx import plugins
        from jax2onnx.plugins import plugin_system as ps
    except ImportError:
        return
    if getattr(ps, "_already_imported_plugins", True) or not hasattr(ps, "_import_tree"):
        return
    root = Path(plugins.__file__).parent
    for helper in sorted(root.glob("_*.py")):
        if helper.stem != "__init__":
            importlib.import_module(f"jax2onnx.plugins.{helper.stem}")
    ps._import_tree(root / "jax", "jax2onnx.plugins.jax")
    ps._already_imported_plugins = True


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
