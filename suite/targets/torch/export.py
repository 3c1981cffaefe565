"""PyTorch exporters, run in a torch export worker: ``torch.onnx.export`` (dynamo), ``torch.export``, OpenVINO,
IREE (iree-turbine) and TFLite (litert-torch).

The model is the one ``torch:eager`` builds (:mod:`suite.targets.torch.model`): same modules, same
weight mapping, so an export target differs from the native one only by the export and the runtime.
Each exporter writes its artifact into ``out_dir`` and returns the manifest fields that describe it
(see :mod:`suite.targets.common.artifacts`); torch's layouts are canonical (NCHW), so no I/O is transposed.
"""
from __future__ import annotations

import importlib.metadata
from pathlib import Path

from suite.targets.base import BuildContext, UnsupportedError
from suite.targets.torch.model import LAYOUT, inference_model, zero_inputs


def _model_and_dummy(ctx: BuildContext):
    """The ``torch:eager`` module of this cell (inference mode) and zero inputs of the cell's shapes."""
    return inference_model(ctx), zero_inputs(ctx)


def _io(ctx):
    """Manifest I/O description: canonical layout, ids fed as int64 (torch's embedding index type)."""
    return {"inputs": [{"name": s.name, "dtype": "int64" if s.dtype.startswith("int") else "float32",
                        "nhwc": False} for s in ctx.workload.inputs],
            "outputs_nhwc": [False] * len(ctx.workload.outputs)}


def to_onnx(ctx: BuildContext, out_dir: Path) -> dict:
    """``torch.onnx.export(..., dynamo=True)``: torch.export graph -> ONNX (onnxscript), one .onnx file."""
    import torch

    model, dummy = _model_and_dummy(ctx)
    path = out_dir / "model.onnx"
    names = [s.name for s in ctx.workload.inputs]
    with torch.inference_mode(False), torch.no_grad():
        program = torch.onnx.export(model, dummy, dynamo=True, input_names=names,
                                    output_names=list(ctx.workload.outputs), verbose=False)
        program.save(str(path), external_data=False)
    return dict(_io(ctx), artifact=path.name, layout=LAYOUT + "; ONNX (torch.onnx dynamo)",
                versions={"torch": torch.__version__, "onnxscript": importlib.metadata.version("onnxscript"),
                          "onnx": importlib.metadata.version("onnx")})


def to_openvino(ctx: BuildContext, out_dir: Path) -> dict:
    """``openvino.convert_model`` of the ``torch:eager`` module (traced with zero inputs of the cell's
    shapes, static shapes) -> ``openvino.save_model`` as IR with float32 weights (``model.xml`` + ``.bin``)."""
    from suite.targets.common.convert import import_openvino, openvino_convert

    ov = import_openvino()
    import torch

    model, dummy = _model_and_dummy(ctx)
    path = out_dir / "model.xml"
    with torch.inference_mode(False), torch.no_grad():
        ov_model = openvino_convert(ov, model, example_input=dummy,
                                       input=[tuple(int(d) for d in x.shape) for x in dummy])
    ov.save_model(ov_model, str(path), compress_to_fp16=False)  # the default would halve the weights
    return dict(_io(ctx), artifact=path.name, layout=LAYOUT + "; OpenVINO IR (convert_model from torch)",
                versions={"torch": torch.__version__, "openvino": importlib.metadata.version("openvino")})


def to_iree(ctx: BuildContext, out_dir: Path) -> dict:
    """``iree.turbine.aot.export`` of the ``torch:eager`` module (torch.export -> torch-dialect MLIR, weights
    inlined, static shapes) -> ``iree-compile`` -> ``model.vmfb``. Compiled by the suite's own ``iree_compile``
    (not turbine's ``compile``, which prints its diagnostics and raises "See diagnostics"), so an op IREE cannot
    legalize is refused (UnsupportedError) with the compiler's words."""
    import io
    import warnings

    import torch

    from suite.targets.common.convert import iree_artifact

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # turbine's import of a deprecated torch API; harmless
        import iree.turbine.aot as aot

        model, dummy = _model_and_dummy(ctx)
        with torch.inference_mode(False), torch.no_grad():
            exported = aot.export(model, args=dummy)
    mlir = io.BytesIO()
    exported.mlir_module.write_bytecode(mlir)  # the same MLIR the in-process compiler would take
    fields = iree_artifact(out_dir, mlir.getvalue(), "torch", ctx.info.options, ctx.device)
    return {**_io(ctx), **fields, "layout": LAYOUT + "; torch MLIR (iree-turbine aot.export) -> " + fields["layout"],
            "versions": dict(fields["versions"], torch=torch.__version__,
                             **{"iree-turbine": importlib.metadata.version("iree-turbine")})}


def to_tflite(ctx: BuildContext, out_dir: Path) -> dict:
    """``litert_torch.convert`` of the ``torch:eager`` module (torch.export -> StableHLO -> TFLite, no
    TensorFlow) -> ``model.tflite`` for the LiteRT interpreter; ``options.quant="dynamic"`` then quantises it
    with AI Edge Quantizer's ``dynamic_wi8_afp32`` recipe (litert-torch's int8 route). Inputs keep torch's layout (NCHW: the
    converter adds the transposes it needs); integer ids go in as int32 (TFLite's index type). A conversion the
    converter cannot do is a refusal (UnsupportedError) with its first line."""
    import torch

    from suite.targets.common.convert import first_line

    version = importlib.metadata.version("litert-torch")
    quant = ctx.info.options.quant
    if quant not in ("none", "dynamic"):  # litert-torch's quantizer has int8/int4 recipes, no float16
        raise UnsupportedError(f"torch>tflite: quant={quant} is not offered by litert-torch {version}")
    import litert_torch

    model, dummy = _model_and_dummy(ctx)
    path = out_dir / "model.tflite"
    try:
        with torch.inference_mode(False), torch.no_grad():
            edge = litert_torch.convert(model, dummy)
        edge.export(str(path))
    except Exception as e:  # noqa: BLE001 - the converter's own errors: lowering, legalisation, export
        raise UnsupportedError(f"litert-torch {version}: {type(e).__name__}: {first_line(e)}") from e
    versions = {"torch": torch.__version__, "litert-torch": version}
    if quant == "dynamic":  # int8 weights (per channel), activations quantised on the fly: AI Edge Quantizer
        from ai_edge_quantizer import quantizer, recipe

        try:
            result = quantizer.Quantizer(bytearray(path.read_bytes()), recipe.dynamic_wi8_afp32()).quantize(
                enable_progress_report=False)
        except Exception as e:  # noqa: BLE001 - the quantizer's refusal of an op or a tensor
            raise UnsupportedError(f"ai-edge-quantizer {importlib.metadata.version('ai-edge-quantizer')} "
                                   f"(dynamic_wi8_afp32): {type(e).__name__}: {first_line(e)}") from e
        path.write_bytes(bytes(result.quantized_model))
        versions["ai-edge-quantizer"] = importlib.metadata.version("ai-edge-quantizer")
    io = _io(ctx)
    for spec in io["inputs"]:  # TFLite has no int64 index tensors: the converter makes the ids int32
        spec["dtype"] = "int32" if spec["dtype"] == "int64" else spec["dtype"]
    how = "int8 dynamic range (AI Edge Quantizer dynamic_wi8_afp32)" if quant == "dynamic" else "none"
    return dict(io, artifact=path.name, layout=LAYOUT + f"; TFLite (litert-torch), quant={how}", versions=versions)


def to_exported_program(ctx: BuildContext, out_dir: Path) -> dict:
    """``torch.export.export`` -> ``torch.export.save`` (.pt2); the runtime loads it back with ``torch.export.load``."""
    import torch

    model, dummy = _model_and_dummy(ctx)
    path = out_dir / "model.pt2"
    with torch.no_grad():
        ep = torch.export.export(model, dummy)
    torch.export.save(ep, str(path))
    return dict(_io(ctx), artifact=path.name, layout=LAYOUT + "; torch.export ExportedProgram",
                versions={"torch": torch.__version__})
