"""The one registry of target ids.

Target id grammar (stable; used identically in the CLI, Parquet, the dashboard and asv):

    native run:       <framework>:<mode>                      torch:eager, jax:jit
    export + runtime: <framework>><format>@<runtime>          torch>onnx@onnxruntime
    keras 3:          keras[<backend>]                        keras[jax]

``parse_target_id`` splits an id into (framework, format, runtime) per that grammar.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class TargetInfo:
    """Static description of a target: capabilities as data, no framework import.

    Attributes:
        id: the stable target id.
        module: the module implementing the target contract (``suite.targets.base``).
        family: worker family; targets of one family share a worker process, families never do.
        framework: framework that defines the model (torch, tensorflow, jax).
        format: ``native`` or an export format.
        runtime: what executes it (eager, compile, function, xla, jit, onnxruntime, litert).
        requires: importable module names the target needs, each with the pip extra to install.
        devices: devices the target can run on.
        options: free per-target switches read by the module (e.g. ``{"jit_compile": True}``).
        description: one line for ``bench list``.
    """

    id: str
    module: str
    family: str
    framework: str
    format: str
    runtime: str
    requires: tuple[tuple[str, str], ...]
    devices: tuple[str, ...] = ("cpu",)
    options: dict = field(default_factory=dict, hash=False, compare=False)
    description: str = ""


def _t(id, module, family, framework, fmt, runtime, requires, devices=("cpu",), description="", **options):
    return TargetInfo(id, module, family, framework, fmt, runtime, tuple(requires), tuple(devices),
                      options, description)


_TORCH = [("torch", "torch")]
_TF = [("tensorflow", "tensorflow")]
_JAX = [("jax", "jax")]

TARGETS: dict[str, TargetInfo] = {t.id: t for t in [
    _t("torch:eager", "suite.targets.torch_native", "torch", "torch", "native", "eager", _TORCH,
       ("cpu", "cuda"), "PyTorch eager, torch.inference_mode", compile=False),
    _t("torch:compile", "suite.targets.torch_native", "torch", "torch", "native", "compile", _TORCH,
       ("cpu", "cuda"), "torch.compile (inductor), inference_mode", compile=True),
    _t("tensorflow:function", "suite.targets.tf_native", "tensorflow", "tensorflow", "native", "function", _TF,
       ("cpu", "cuda"), "tf.Module + tf.function graph from raw TensorFlow ops", jit_compile=False),
    _t("tensorflow:xla", "suite.targets.tf_native", "tensorflow", "tensorflow", "native", "xla", _TF,
       ("cpu", "cuda"), "tf.function(jit_compile=True): XLA", jit_compile=True),
    _t("jax:jit", "suite.targets.jax_native", "jax", "jax", "native", "jit", _JAX,
       ("cpu", "cuda", "tpu"), "jax.jit of a pure function over params"),
    # --- export formats and runtimes ---
    # Exported in a worker of `export_family` (suite/targets/artifacts.py), run in a worker of `family`;
    # runtime families (onnxruntime, litert) import neither torch, tensorflow nor jax.
    _t("torch>onnx@onnxruntime", "suite.targets.ort_runtime", "onnxruntime", "torch", "onnx", "onnxruntime",
       [("onnxruntime", "onnx")], description="torch.onnx.export (dynamo) -> ONNX Runtime, CPU EP",
       export_family="torch", exporter="suite.targets.export_torch:to_onnx",
       export_requires=(("torch", "torch"), ("onnxscript", "onnx")), converter_dists=("torch", "onnx", "onnxscript")),
    _t("tensorflow>onnx@onnxruntime", "suite.targets.ort_runtime", "onnxruntime", "tensorflow", "onnx",
       "onnxruntime", [("onnxruntime", "onnx")], description="tf.function -> tf2onnx -> ONNX Runtime, CPU EP",
       export_family="tensorflow", exporter="suite.targets.export_tf:to_onnx",
       export_requires=(("tensorflow", "tensorflow"), ("tf2onnx", "onnx")),
       converter_dists=("tensorflow-cpu|tensorflow", "tf2onnx", "onnx")),
    _t("jax>onnx@onnxruntime", "suite.targets.ort_runtime", "onnxruntime", "jax", "onnx", "onnxruntime",
       [("onnxruntime", "onnx")], description="jax -> jax2tf -> tf2onnx -> ONNX Runtime (where tf2onnx can)",
       export_family="jax2tf", exporter="suite.targets.export_jax:to_onnx",
       export_requires=(("jax", "jax"), ("tensorflow", "tensorflow"), ("tf2onnx", "onnx")),
       converter_dists=("jax", "jaxlib", "tensorflow-cpu|tensorflow", "tf2onnx", "onnx")),
    *[_t(f"tensorflow>{fmt}@{rt}", "suite.targets.litert_runtime", "litert", "tensorflow", fmt, rt,
         [("ai_edge_litert|tflite_runtime", "litert")], description=desc, export_family="tensorflow",
         exporter="suite.targets.export_tf:to_tflite", export_requires=(("tensorflow", "tensorflow"),),
         converter_dists=("tensorflow-cpu|tensorflow",), quant=quant, dtype=dtype, xnnpack=xnn,
         # full int8 keeps causal attention's core in float (export_tf.py); in options, so in the cache key
         **({"float_ops": ("BATCH_MATMUL", "SOFTMAX")} if quant == "full" else {}))
      for fmt, rt, quant, dtype, xnn, desc in [
          ("tflite", "litert", "none", "float32", True, "TFLite float32 -> LiteRT interpreter, XNNPACK on"),
          ("tflite", "litert-noxnnpack", "none", "float32", False,
           "TFLite float32 -> LiteRT interpreter, builtin kernels (XNNPACK off)"),
          ("tflite-fp16", "litert", "float16", "float16-weights", True, "TFLite float16 weights -> LiteRT, XNNPACK on"),
          ("tflite-int8", "litert", "dynamic", "int8", True,
           "TFLite int8 dynamic-range quantisation -> LiteRT, XNNPACK on"),
          ("tflite-int8-full", "litert", "full", "int8", True,
           "TFLite full-integer int8 (representative dataset, float fallback; causal attention core "
           "kept float) -> LiteRT")]],
    _t("jax>tflite@litert", "suite.targets.litert_runtime", "litert", "jax", "tflite", "litert",
       [("ai_edge_litert|tflite_runtime", "litert")], description="jax -> jax2tf -> TFLite -> LiteRT (where it converts)",
       export_family="jax2tf", exporter="suite.targets.export_jax:to_tflite",
       export_requires=(("jax", "jax"), ("tensorflow", "tensorflow")),
       converter_dists=("jax", "jaxlib", "tensorflow-cpu|tensorflow")),
    _t("torch>export@torch", "suite.targets.roundtrip", "torch", "torch", "export", "torch", _TORCH,
       description="torch.export ExportedProgram saved (.pt2), loaded back, run", export_family="torch",
       exporter="suite.targets.export_torch:to_exported_program", load="torch.export", converter_dists=("torch",)),
    _t("tensorflow>savedmodel@tensorflow", "suite.targets.roundtrip", "tensorflow", "tensorflow", "savedmodel",
       "tensorflow", _TF, description="tf.saved_model saved, loaded back, run", export_family="tensorflow",
       exporter="suite.targets.export_tf:to_saved_model", load="saved_model",
       converter_dists=("tensorflow-cpu|tensorflow",)),
    _t("jax>export@jax", "suite.targets.roundtrip", "jax", "jax", "export", "jax", _JAX,
       description="jax.export serialised, deserialised, run under jit", export_family="jax",
       exporter="suite.targets.export_jax:to_jax_export", load="jax.export", converter_dists=("jax", "jaxlib")),
    # Test-only: an exporter that corrupts the weights it writes (NaN / scaled), proving a broken
    # artifact is caught by verification, not timed.
    *[_t(f"torch>onnx-{bug}@onnxruntime", "suite.targets.ort_runtime", "onnxruntime", "torch", f"onnx-{bug}",
         "onnxruntime", [("onnxruntime", "onnx")], description=f"test-only: ONNX artifact with {bug} weights",
         hidden=True, export_family="torch", exporter="suite.targets.export_broken:torch_onnx_" + bug,
         export_requires=(("torch", "torch"), ("onnxscript", "onnx")), converter_dists=("torch", "onnx"))
      for bug in ("nan", "garbage")],
    # --- keras 3 ---
    # One functional keras.Model, one backend per worker family (KERAS_BACKEND set by profiles.worker_env).
    _t("keras[jax]", "suite.targets.keras3", "keras-jax", "keras", "native", "jax", [("keras", "keras"), *_JAX],
       ("cpu", "cuda", "tpu"), "Keras 3 functional model on the jax backend, jax.jit(stateless_call)"),
    _t("keras[tensorflow]", "suite.targets.keras3", "keras-tensorflow", "keras", "native", "tensorflow",
       [("keras", "keras"), *_TF], ("cpu", "cuda"), "Keras 3 functional model on the tensorflow backend, "
       "tf.function"),
    _t("keras[torch]", "suite.targets.keras3", "keras-torch", "keras", "native", "torch", [("keras", "keras"), *_TORCH],
       ("cpu", "cuda"), "Keras 3 functional model on the torch backend, eager inference_mode"),
    _t("keras:bug-lstm-gates", "suite.targets.keras3", "keras-jax", "keras", "native", "jax",
       [("keras", "keras"), *_JAX], description="test-only: Keras LSTM gates read in i,g,f,o order", hidden=True,
       inject_bug="lstm_gate_order"),
    # Test-only targets (hidden from `bench list` and the default matrix): see suite/targets/fault.py.
    *[_t(f"test:{name}", "suite.targets.fault", "fault", "numpy", "native", name, [], ("cpu",),
         f"test-only: {name}", hidden=True, fault=name)
      for name in ("numpy", "crash", "segfault", "hang", "oom", "error", "nan", "garbage")],
    # Test-only deliberate porting bugs, proving that verification catches a wrong mapping.
    _t("torch:bug-dense-kernel", "suite.targets.torch_native", "torch", "torch", "native", "eager", _TORCH,
       description="test-only: dense kernel reshaped, not transposed", hidden=True, compile=False,
       inject_bug="dense_kernel_not_transposed"),
    _t("torch:bug-conv-kernel", "suite.targets.torch_native", "torch", "torch", "native", "eager", _TORCH,
       description="test-only: OIHW conv kernel read as HWIO", hidden=True, compile=False,
       inject_bug="conv_kernel_hwio"),
    _t("torch:bug-lstm-both-biases", "suite.targets.torch_native", "torch", "torch", "native", "eager", _TORCH,
       description="test-only (train): torch's second LSTM bias trained too, so the bias moves twice",
       hidden=True, compile=False, inject_bug="lstm_train_both_biases"),
    _t("torch:bug-sgd-dampening", "suite.targets.torch_native", "torch", "torch", "native", "eager", _TORCH,
       description="test-only (train): SGD momentum with dampening = momentum", hidden=True, compile=False,
       inject_bug="sgd_dampening"),
    _t("tensorflow:bug-conv-kernel", "suite.targets.tf_native", "tensorflow", "tensorflow", "native", "function",
       _TF, description="test-only: conv kernel not transposed to HWIO", hidden=True, jit_compile=False,
       inject_bug="conv_kernel_not_transposed"),
    _t("jax:bug-lstm-gates", "suite.targets.jax_native", "jax", "jax", "native", "jit", _JAX,
       description="test-only: LSTM gates read in i,g,f,o order", hidden=True, inject_bug="lstm_gate_order"),
]}

_ID_RE = re.compile(r"^(?:(?P<fw>[a-z0-9_]+):(?P<mode>[a-z0-9_-]+)"
                    r"|(?P<src>[a-z0-9_]+)>(?P<fmt>[a-z0-9_-]+)@(?P<rt>[a-z0-9_-]+)"
                    r"|keras\[(?P<backend>[a-z0-9_]+)\])$")


def parse_target_id(target_id: str) -> tuple[str, str, str]:
    """Returns (framework, format, runtime) for a target id of the documented grammar."""
    m = _ID_RE.match(target_id)
    if not m:
        raise ValueError(f"malformed target id {target_id!r}: expected framework:mode, "
                         "framework>format@runtime or keras[backend]")
    if m["fw"]:
        return m["fw"], "native", m["mode"]
    if m["src"]:
        return m["src"], m["fmt"], m["rt"]
    return "keras", "native", m["backend"]


def get_target(target_id: str) -> TargetInfo:
    """Looks up a target id; raises KeyError with the list of known ids."""
    try:
        return TARGETS[target_id]
    except KeyError:
        raise KeyError(f"unknown target {target_id!r}; known: {', '.join(TARGETS)}") from None


def load_module(info: TargetInfo):
    """Imports the target's module on demand (the module itself imports its framework lazily)."""
    import importlib

    return importlib.import_module(info.module)
