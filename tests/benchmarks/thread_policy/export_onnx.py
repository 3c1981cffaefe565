"""Exports the torch workloads of models_def.py to ONNX for onnxruntime: python export_onnx.py MODELS_DIR.
Writes MODELS_DIR/{mlp_b1,mlp_b32,cnn_b1}.onnx (+ .onnx.data). study.py runs it when a model is missing."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from models_def import torch_models  # noqa: E402


def main(models_dir: Path) -> None:
    import torch

    models_dir.mkdir(parents=True, exist_ok=True)
    for name, (m, x) in torch_models().items():
        torch.onnx.export(m, (x,), str(models_dir / f"{name}.onnx"), dynamo=True, input_names=["x"])
        print("exported", name)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python export_onnx.py MODELS_DIR")
    main(Path(sys.argv[1]))
