"""The test-only target ids (see the package docstring). Each wraps production code or is pure NumPy."""
from __future__ import annotations

from dataclasses import dataclass

from suite.targets.info import (Export, KerasOptions, OnnxOptions, Options, TargetInfo, TensorFlowOptions,
                                    TorchOptions, target)

_TORCH = [("torch", "torch")]
_TF = [("tensorflow", "tensorflow")]
_JAX = [("jax", "jax")]


@dataclass(frozen=True)
class FaultOptions(Options):
    fault: str = "numpy"  # numpy | crash | segfault | hang | oom | error | nan | garbage | drift
    delay_ms: float = 0.0  # busy-wait added to every call (regression-detection tests)


FAULTS = ("numpy", "crash", "segfault", "hang", "oom", "error", "nan", "garbage", "drift")

TESTING_TARGETS: dict[str, TargetInfo] = {t.id: t for t in [
    # A NumPy model that behaves well (test:numpy) or fails in one known way each.
    *[target(f"test:{name}", "suite.targets.testing.fault", "fault", [], framework="numpy", runtime="numpy",
             options=FaultOptions(fault=name), description=f"test-only: {name}") for name in FAULTS],
    # An exporter that corrupts the weights it writes: a broken artifact is caught by verification, not timed.
    *[target(f"torch>onnx-{bug}@onnxruntime", "suite.targets.runtimes.onnxruntime", "onnxruntime",
             [("onnxruntime", "onnx")], variant="cpu-ep", options=OnnxOptions(),
             description=f"test-only: ONNX artifact with {bug} weights",
             export=Export("torch", f"suite.targets.testing.broken_export:torch_onnx_{bug}",
                           (("torch", "torch"), ("onnxscript", "onnx")), ("torch", "onnx")))
      for bug in ("nan", "garbage")],
    # Deliberate porting bugs wrapped around production targets (suite/targets/testing/bugs_<framework>.py).
    target("torch:bug-dense-kernel", "suite.targets.testing.bugs_torch", "torch", _TORCH, variant="eager",
           options=TorchOptions(), description="test-only: dense kernel reshaped, not transposed"),
    target("torch:bug-conv-kernel", "suite.targets.testing.bugs_torch", "torch", _TORCH,
           options=TorchOptions(), description="test-only: OIHW conv kernel read as HWIO"),
    target("torch:bug-lstm-both-biases", "suite.targets.testing.bugs_torch", "torch", _TORCH,
           options=TorchOptions(),
           description="test-only (train): torch's second LSTM bias trained too, so the bias moves twice"),
    target("torch:bug-relu-straight-through", "suite.targets.testing.bugs_torch", "torch", _TORCH,
           options=TorchOptions(), description="test-only (train): ReLU whose backward passes the gradient unmasked"),
    target("torch:bug-bn-eval-in-train", "suite.targets.testing.bugs_torch", "torch", _TORCH,
           options=TorchOptions(), description="test-only (train): batch norm kept in eval mode while training"),
    target("torch:bug-sgd-dampening", "suite.targets.testing.bugs_torch", "torch", _TORCH,
           options=TorchOptions(), description="test-only (train): SGD momentum with dampening = momentum"),
    target("tensorflow:bug-conv-kernel", "suite.targets.testing.bugs_tensorflow", "tensorflow", _TF,
           options=TensorFlowOptions(), description="test-only: conv kernel not transposed to HWIO"),
    target("jax:bug-lstm-gates", "suite.targets.testing.bugs_jax", "jax", _JAX,
           description="test-only: LSTM gates read in i,g,f,o order"),
    target("keras:bug-lstm-gates", "suite.targets.testing.bugs_keras", "keras-jax", [("keras", "keras"), *_JAX],
           runtime="jax", options=KerasOptions(backend="jax"), description="test-only: Keras LSTM gates read in i,g,f,o order"),
    target("jax:bug-gelu-tanh", "suite.targets.testing.bugs_jax", "jax", _JAX,
           description="test-only: jax.nn.gelu at its default (tanh approximation) where exact GELU is asked"),
    target("torch:bug-gelu-exact", "suite.targets.testing.bugs_torch", "torch", _TORCH, options=TorchOptions(),
           description="test-only: nn.GELU() at its default (exact erf) where the tanh approximation is asked"),
    target("torch:bug-rope-interleaved", "suite.targets.testing.bugs_torch", "torch", _TORCH, options=TorchOptions(),
           description="test-only: rotary embedding applied interleaved (GPT-J) where the half split is asked"),
    target("jax:bug-gqa-groups", "suite.targets.testing.bugs_jax", "jax", _JAX,
           description="test-only: kv heads tiled (query head h reads kv head h % Hkv), not repeated per group"),
    target("torch:bug-gru-gates", "suite.targets.testing.bugs_torch", "torch", _TORCH, options=TorchOptions(),
           description="test-only: canonical GRU gates z, r, n copied into nn.GRU (r, z, n) without reordering"),
    target("torch:bug-resize-align-corners", "suite.targets.testing.bugs_torch", "torch", _TORCH,
           options=TorchOptions(),
           description="test-only: bilinear resize with align_corners=True where half-pixel centres are asked"),
]}
