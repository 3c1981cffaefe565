"""Writes small_cnn.onnx (the model of small_cnn_onnx.yaml): a small CNN built with onnx.helper, seeded weights.

    python workloads/models/make_small_cnn_onnx.py      # needs only onnx and NumPy

Conv 3x3 (16) -> Relu -> MaxPool 2x2 -> Conv 3x3 (32) -> Relu -> GlobalAveragePool -> Flatten -> Gemm (10),
opset 17, a free batch dimension. The file is about 25 kB; the script rewrites it bit for bit.
"""
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def build() -> onnx.ModelProto:
    rng = np.random.default_rng(7)

    def glorot(shape, fan_in, fan_out):
        lim = np.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-lim, lim, size=shape).astype(np.float32)

    inits = [
        numpy_helper.from_array(glorot((16, 3, 3, 3), 27, 144), "w1"),
        numpy_helper.from_array(rng.normal(0, 0.1, 16).astype(np.float32), "b1"),
        numpy_helper.from_array(glorot((32, 16, 3, 3), 144, 288), "w2"),
        numpy_helper.from_array(rng.normal(0, 0.1, 32).astype(np.float32), "b2"),
        numpy_helper.from_array(glorot((10, 32), 32, 10), "w3"),
        numpy_helper.from_array(rng.normal(0, 0.1, 10).astype(np.float32), "b3"),
    ]
    nodes = [
        helper.make_node("Conv", ["image", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("GlobalAveragePool", ["r2"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "w3", "b3"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes, "small_cnn",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="bench-suite")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


if __name__ == "__main__":
    out = Path(__file__).with_name("small_cnn.onnx")
    out.write_bytes(build().SerializeToString())
    print(f"wrote {out} ({out.stat().st_size} bytes)")
