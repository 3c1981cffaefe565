"""The one registry of target ids: production targets only (test targets: ``suite.targets.testing``).

Target ids follow the grammar documented (and parsed) in :mod:`suite.targets.info`. Options are typed,
frozen dataclasses, one class per kind of target, built with keywords; each field means one thing.
"""
from __future__ import annotations

import os

from suite.targets.info import (Export, IREEOptions, KerasOptions, LiteRTOptions, OnnxOptions, OpenVINOOptions, Options, RoundTripOptions,  # noqa: F401 (re-exported for callers)
                                TargetId, TargetInfo, TensorFlowOptions, TorchOptions, parse_target_id, target)

_TORCH = [("torch", "torch")]
_TF = [("tensorflow", "tensorflow")]
_JAX = [("jax", "jax")]
_LITERT = [("ai_edge_litert|tflite_runtime", "litert")]
_ORT = [("onnxruntime", "onnx")]
_OV = [("openvino", "openvino")]
_IREE = [("iree.runtime", "iree")]
_TF_DISTS = ("tensorflow-cpu|tensorflow",)

_TFLITE = [  # format, runtime, quantisation, judged as, XNNPACK, description
    ("tflite", "litert", "none", "float32", True, "TFLite float32 -> LiteRT interpreter, XNNPACK on"),
    ("tflite", "litert-noxnnpack", "none", "float32", False,
     "TFLite float32 -> LiteRT interpreter, builtin kernels (XNNPACK off)"),
    ("tflite-fp16", "litert", "float16", "float16-weights", True, "TFLite float16 weights -> LiteRT, XNNPACK on"),
    ("tflite-int8", "litert", "dynamic", "int8", True, "TFLite int8 dynamic-range quantisation -> LiteRT, XNNPACK on"),
    ("tflite-int8-full", "litert", "full", "int8", True,
     "TFLite full-integer int8 (representative dataset, float fallback; causal attention core kept float) -> LiteRT"),
]

TARGETS: dict[str, TargetInfo] = {t.id: t for t in [
    # --- native ---
    target("torch:eager", "suite.targets.torch", "torch", _TORCH, devices=("cpu", "cuda"),
           options=TorchOptions(compile=False), description="PyTorch eager, torch.inference_mode"),
    target("torch:compile", "suite.targets.torch", "torch", _TORCH, devices=("cpu", "cuda"),
           options=TorchOptions(compile=True), description="torch.compile (inductor), inference_mode"),
    target("tensorflow:function", "suite.targets.tensorflow", "tensorflow", _TF, devices=("cpu", "cuda"),
           options=TensorFlowOptions(jit_compile=False),
           description="tf.Module + tf.function graph from raw TensorFlow ops"),
    target("tensorflow:xla", "suite.targets.tensorflow", "tensorflow", _TF, devices=("cpu", "cuda"),
           options=TensorFlowOptions(jit_compile=True), description="tf.function(jit_compile=True): XLA"),
    target("jax:jit", "suite.targets.jax", "jax", _JAX, devices=("cpu", "cuda", "tpu"),
           description="jax.jit of a pure function over params"),
    # --- export formats and runtimes ---
    # Exported in a worker of `export.family`, run in a worker of `family`; runtime families
    # (onnxruntime, litert) import neither torch, tensorflow nor jax.
    target("torch>onnx@onnxruntime", "suite.targets.runtimes.onnxruntime", "onnxruntime", _ORT, variant="cpu-ep",
           options=OnnxOptions(), description="torch.onnx.export (dynamo) -> ONNX Runtime, CPU EP",
           export=Export("torch", "suite.targets.torch.export:to_onnx", (("torch", "torch"), ("onnxscript", "onnx")),
                         ("torch", "onnx", "onnxscript"))),
    target("tensorflow>onnx@onnxruntime", "suite.targets.runtimes.onnxruntime", "onnxruntime", _ORT,
           variant="cpu-ep", options=OnnxOptions(), description="tf.function -> tf2onnx -> ONNX Runtime, CPU EP",
           export=Export("tensorflow", "suite.targets.tensorflow.export:to_onnx",
                         (("tensorflow", "tensorflow"), ("tf2onnx", "onnx")), (*_TF_DISTS, "tf2onnx", "onnx"))),
    target("jax>onnx@onnxruntime", "suite.targets.runtimes.onnxruntime", "onnxruntime", _ORT, variant="cpu-ep",
           options=OnnxOptions(opset=23), description="jax2onnx -> ONNX Runtime, CPU EP",
           export=Export("jax", "suite.targets.jax.export:to_onnx", (("jax", "jax"), ("jax2onnx", "jax2onnx")),
                         ("jax", "jaxlib", "jax2onnx", "onnx"))),
    *[target(f"tensorflow>{fmt}@{rt}", "suite.targets.runtimes.litert", "litert", _LITERT,
             variant="xnnpack" if xnn else "builtin", dtype=dtype, description=desc,
             # full int8 keeps causal attention's core in float (tensorflow/export.py); in options, so in the cache key
             options=LiteRTOptions(quant=quant, xnnpack=xnn,
                                   float_ops=("BATCH_MATMUL", "SOFTMAX") if quant == "full" else ()),
             export=Export("tensorflow", "suite.targets.tensorflow.export:to_tflite", (("tensorflow", "tensorflow"),),
                           _TF_DISTS,
                           # XNNPACK is the interpreter's choice: the builtin-kernel route runs the same file
                           same_artifact_as=None if xnn else f"tensorflow>{fmt}@litert"))
      for fmt, rt, quant, dtype, xnn, desc in _TFLITE],
    target("jax>tflite@litert", "suite.targets.runtimes.litert", "litert", _LITERT, variant="xnnpack",
           options=LiteRTOptions(), description="jax -> jax2tf -> TFLite -> LiteRT (where it converts)",
           export=Export("jax2tf", "suite.targets.jax.export:to_tflite", (("jax", "jax"), ("tensorflow", "tensorflow")),
                         ("jax", "jaxlib", *_TF_DISTS))),
    target("torch>tflite@litert", "suite.targets.runtimes.litert", "litert", _LITERT, variant="xnnpack",
           options=LiteRTOptions(), description="litert-torch (torch.export -> TFLite, no TensorFlow) -> LiteRT",
           export=Export("torch", "suite.targets.torch.export:to_tflite", (("torch", "torch"),
                                                                            ("litert_torch", "litert-torch")),
                         ("torch", "litert-torch"))),
    target("torch>tflite-int8@litert", "suite.targets.runtimes.litert", "litert", _LITERT, variant="xnnpack",
           dtype="int8", options=LiteRTOptions(quant="dynamic"),
           description="litert-torch -> TFLite, int8 weights (AI Edge Quantizer dynamic_wi8_afp32) -> LiteRT",
           export=Export("torch", "suite.targets.torch.export:to_tflite", (("torch", "torch"),
                                                                            ("litert_torch", "litert-torch")),
                         ("torch", "litert-torch", "ai-edge-quantizer"))),
    # OpenVINO (CPU plugin): IR converted from the framework, or the torch ONNX file read by its ONNX frontend
    target("torch>openvino@openvino", "suite.targets.runtimes.openvino", "openvino", _OV, variant="cpu",
           options=OpenVINOOptions(), description="openvino.convert_model from the torch module -> IR -> OpenVINO CPU",
           export=Export("torch", "suite.targets.torch.export:to_openvino", (("torch", "torch"), ("openvino", "openvino")),
                         ("torch", "openvino"))),
    target("torch>onnx@openvino", "suite.targets.runtimes.openvino", "openvino", _OV, variant="cpu",
           options=OpenVINOOptions(), description="the torch.onnx file (as torch>onnx@onnxruntime) -> OpenVINO CPU",
           export=Export("torch", "suite.targets.torch.export:to_onnx", (("torch", "torch"), ("onnxscript", "onnx")),
                         ("torch", "onnx", "onnxscript"), same_artifact_as="torch>onnx@onnxruntime")),
    target("tensorflow>openvino@openvino", "suite.targets.runtimes.openvino", "openvino", _OV, variant="cpu",
           options=OpenVINOOptions(), description="SavedModel -> openvino.convert_model -> IR -> OpenVINO CPU",
           export=Export("tensorflow", "suite.targets.tensorflow.export:to_openvino",
                         (("tensorflow", "tensorflow"), ("openvino", "openvino")), (*_TF_DISTS, "openvino"))),
    # IREE: a .vmfb compiled by iree-compile for the profile's device: llvm-cpu (target CPU = host, local-task
    # driver) on CPU profiles, PTX for the cuda driver on the cuda profile (one artifact per device)
    target("jax>stablehlo@iree", "suite.targets.runtimes.iree", "iree", _IREE, variant="llvm-cpu",
           devices=("cpu", "cuda"), options=IREEOptions(),
           description="jax.export StableHLO -> iree-compile (llvm-cpu, host CPU) -> IREE local-task",
           export=Export("jax", "suite.targets.jax.export:to_iree", (("jax", "jax"), ("iree.compiler", "iree")),
                         ("jax", "jaxlib", "iree-base-compiler", "iree-base-runtime"), per_device=True)),
    target("torch>iree@iree", "suite.targets.runtimes.iree", "iree", _IREE, variant="llvm-cpu",
           devices=("cpu", "cuda"), options=IREEOptions(),
           description="iree-turbine aot.export (torch MLIR) -> iree-compile (llvm-cpu, host CPU) -> IREE local-task",
           export=Export("torch", "suite.targets.torch.export:to_iree", (("torch", "torch"), ("iree.turbine", "iree")),
                         ("torch", "iree-turbine", "iree-base-compiler", "iree-base-runtime"), per_device=True)),
    # an ONNX file given as a source: workload (suite.sources.onnx): the file itself, with the workload's outputs
    target("onnx>onnx@onnxruntime", "suite.targets.runtimes.onnxruntime", "onnxruntime", _ORT, variant="cpu-ep",
           options=OnnxOptions(), description="a source ONNX file -> ONNX Runtime, CPU EP (source: onnx workloads)",
           export=Export("onnxruntime", "suite.sources.onnx:to_onnx", (("onnx", "onnx"),), ("onnx",))),
    target("onnx>onnx@openvino", "suite.targets.runtimes.openvino", "openvino", _OV, variant="cpu",
           options=OpenVINOOptions(), description="a source ONNX file -> OpenVINO CPU (its ONNX frontend)",
           export=Export("onnxruntime", "suite.sources.onnx:to_onnx", (("onnx", "onnx"),), ("onnx",),
                         same_artifact_as="onnx>onnx@onnxruntime")),
    target("torch>export@torch", "suite.targets.runtimes.roundtrip", "torch", _TORCH, variant="load",
           options=RoundTripOptions(load="torch.export"),
           description="torch.export ExportedProgram saved (.pt2), loaded back, run",
           export=Export("torch", "suite.targets.torch.export:to_exported_program", (), ("torch",))),
    target("tensorflow>savedmodel@tensorflow", "suite.targets.runtimes.roundtrip", "tensorflow", _TF, variant="load",
           options=RoundTripOptions(load="saved_model"), description="tf.saved_model saved, loaded back, run",
           export=Export("tensorflow", "suite.targets.tensorflow.export:to_saved_model", (), _TF_DISTS)),
    target("jax>export@jax", "suite.targets.runtimes.roundtrip", "jax", _JAX, variant="load",
           options=RoundTripOptions(load="jax.export"), description="jax.export serialised, deserialised, run under jit",
           export=Export("jax", "suite.targets.jax.export:to_jax_export", (), ("jax", "jaxlib"))),
    # --- keras 3: one functional keras.Model, one backend per worker family (KERAS_BACKEND set before import) ---
    target("keras[jax]", "suite.targets.keras", "keras-jax", [("keras", "keras"), *_JAX], variant="jit",
           devices=("cpu", "cuda", "tpu"), options=KerasOptions(backend="jax"),
           description="Keras 3 functional model on the jax backend, jax.jit(stateless_call)"),
    target("keras[tensorflow]", "suite.targets.keras", "keras-tensorflow", [("keras", "keras"), *_TF],
           variant="function", devices=("cpu", "cuda"), options=KerasOptions(backend="tensorflow"),
           description="Keras 3 functional model on the tensorflow backend, tf.function"),
    target("keras[torch]", "suite.targets.keras", "keras-torch", [("keras", "keras"), *_TORCH], variant="eager",
           devices=("cpu", "cuda"), options=KerasOptions(backend="torch"),
           description="Keras 3 functional model on the torch backend, eager inference_mode"),
]}

# Worker families -> the module of their runtime hooks (threads, env before import, in-process setup):
# see ``suite.targets.base.RuntimeHooks``. Keras families use their backend's hooks plus KERAS_BACKEND.
FAMILY_RUNTIMES: dict[str, str] = {
    "torch": "suite.targets.torch.runtime",
    "tensorflow": "suite.targets.tensorflow.runtime",
    "jax": "suite.targets.jax.runtime",
    "jax2tf": "suite.targets.jax.runtime",
    "keras-jax": "suite.targets.keras.runtime",
    "keras-tensorflow": "suite.targets.keras.runtime",
    "keras-torch": "suite.targets.keras.runtime",
    "onnxruntime": "suite.targets.runtimes.hooks",
    "litert": "suite.targets.runtimes.hooks",
    "openvino": "suite.targets.runtimes.hooks",
    "iree": "suite.targets.runtimes.hooks",
    "fault": "suite.targets.runtimes.hooks",
    "numpy": "suite.targets.runtimes.hooks",  # `bench peak`'s NumPy GEMM and copy (suite.peak_worker)
}

TESTING_SWITCH = "BENCH_TESTING_TARGETS"


def testing_enabled() -> bool:
    """Whether the test-only targets of ``suite.targets.testing`` are registered (``$BENCH_TESTING_TARGETS=1``,
    set by the test suite; inherited by the worker subprocesses)."""
    return os.environ.get(TESTING_SWITCH) == "1"


def all_targets() -> dict[str, TargetInfo]:
    """Production targets, plus the test-only ones when :func:`testing_enabled`."""
    if not testing_enabled():
        return TARGETS
    from suite.targets.testing.registry import TESTING_TARGETS

    return {**TARGETS, **TESTING_TARGETS}


def get_target(target_id: str) -> TargetInfo:
    """Looks up a target id; raises KeyError with the list of known ids."""
    known = all_targets()
    try:
        return known[target_id]
    except KeyError:
        raise KeyError(f"unknown target {target_id!r}; known: {', '.join(TARGETS)}") from None


def load_module(info: TargetInfo):
    """Imports the target's module on demand (the module itself imports its framework lazily)."""
    import importlib

    return importlib.import_module(info.module)


def runtime_hooks(family: str):
    """The runtime hooks module of a worker family (no framework is imported by importing it)."""
    import importlib

    try:
        return importlib.import_module(FAMILY_RUNTIMES[family])
    except KeyError:
        raise KeyError(f"unknown worker family {family!r}; known: {', '.join(FAMILY_RUNTIMES)}") from None
