"""Test-only exporters that write a *broken* artifact on purpose (targets ``torch>onnx-nan@onnxruntime``
and ``torch>onnx-garbage@onnxruntime``, test-only). A converter that silently writes NaN or wrong weights
must come out of verification as ``nan`` / ``fail`` with figures, never as a timed ``pass``."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from suite.targets.torch import export as export_torch


def _corrupt(path: Path, how: str) -> None:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    inits = [t for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT]
    if not inits:
        raise ValueError("no float initializer to corrupt")
    for t in inits:
        a = numpy_helper.to_array(t).copy()
        if how == "nan":
            a.flat[0] = np.nan
        else:
            a = a * 1.5 + 0.1
        t.CopyFrom(numpy_helper.from_array(a.astype(np.float32), t.name))
    onnx.save(model, str(path))


def torch_onnx_nan(ctx, out_dir: Path) -> dict:
    fields = export_torch.to_onnx(ctx, out_dir)
    _corrupt(out_dir / fields["artifact"], "nan")
    return fields


def torch_onnx_garbage(ctx, out_dir: Path) -> dict:
    fields = export_torch.to_onnx(ctx, out_dir)
    _corrupt(out_dir / fields["artifact"], "garbage")
    return fields
