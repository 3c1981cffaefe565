"""PyTorch exporters, run in a torch export worker: ``torch.onnx.export`` (dynamo) and ``torch.export``.

The model is the one ``torch:eager`` builds (:mod:`suite.targets.torch.model`): same modules, same
weight mapping, so an export target differs from the native one only by the export and the runtime.
Each exporter writes its artifact into ``out_dir`` and returns the manifest fields that describe it
(see :mod:`suite.targets.common.artifacts`); torch's layouts are canonical (NCHW), so no I/O is transposed.
"""
from __future__ import annotations

import importlib.metadata
from pathlib import Path

from suite.targets.base import BuildContext
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
