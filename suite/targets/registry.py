"""The one registry of target ids: production targets only (test targets: ``suite.targets.testing``).

Target id grammar (stable; used identically in the CLI, Parquet, the dashboard and asv), parsed by
:func:`parse_target_id`, the only parser of ids:

    native run:       <framework>:<variant>                         torch:eager, jax:jit
    export + runtime: <framework>><format>@<runtime>[-<variant>]    torch>onnx@onnxruntime, tensorflow>tflite@litert-noxnnpack
    keras 3:          keras[<backend>]                              keras[jax]

A :class:`TargetInfo` takes its ``framework``, ``format`` and ``runtime`` from its id through that
parser, so the id and the fields can never disagree. Options are typed, frozen dataclasses, one class
per kind of target, built with keywords; each field means one thing.
"""
from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field


# ---- typed options: what a target module reads from its TargetInfo ----

@dataclass(frozen=True)
class Options:
    """No options (the base of every options class)."""

    def as_key(self) -> dict:
        """The options as plain data (artifact cache keys, ``bench list``)."""
        return asdict(self)


@dataclass(frozen=True)
class TorchOptions(Options):
    compile: bool = False  # torch.compile (inductor) instead of eager


@dataclass(frozen=True)
class TensorFlowOptions(Options):
    jit_compile: bool = False  # tf.function(jit_compile=True): XLA


@dataclass(frozen=True)
class KerasOptions(Options):
    backend: str = "jax"  # KERAS_BACKEND of the worker family keras-<backend>


@dataclass(frozen=True)
class OnnxOptions(Options):
    opset: int = 17  # ONNX opset the TF / JAX converters target (torch.onnx picks its own)


@dataclass(frozen=True)
class LiteRTOptions(Options):
    quant: str = "none"  # none | float16 | dynamic | full (suite.targets.tensorflow.export.QUANT)
    xnnpack: bool = True  # False: builtin kernels only (BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    float_ops: tuple[str, ...] = ()  # full int8: TFLite ops kept in float (selective quantisation)


@dataclass(frozen=True)
class RoundTripOptions(Options):
    load: str = ""  # torch.export | saved_model | jax.export


@dataclass(frozen=True)
class Export:
    """How an export target's artifact is produced (``suite.targets.common.artifacts``).

    Attributes:
        family: the worker family that runs the exporter (torch, tensorflow, jax, or jax2tf: jax plus
            tensorflow in one process, only ever for converting, never for timing).
        exporter: ``"module:function"``, called as ``function(ctx, out_dir) -> manifest fields``.
        requires: importable modules the exporter needs, each with its pip extra (the target's own
            ``requires`` stays runtime-only, so a machine with just the runtime plans these cells).
        converter_dists: distributions whose versions key the artifact cache ("a|b": whichever is installed).
    """

    family: str
    exporter: str
    requires: tuple[tuple[str, str], ...]
    converter_dists: tuple[str, ...]


@dataclass(frozen=True)
class TargetInfo:
    """Static description of a target: capabilities as data, no framework import.

    Attributes:
        id: the stable target id.
        module: the module implementing the target contract (``suite.targets.base``).
        family: worker family; targets of one family share a worker process, families never do.
        framework: framework that defines the model (torch, tensorflow, jax, keras, numpy).
        format: ``native`` or the export format (onnx, tflite, tflite-int8, export, savedmodel, ...).
        runtime: the software that executes the model: the framework itself for native targets
            (``torch``), the Keras backend for ``keras[...]``, the runtime for exported artifacts.
        variant: how that runtime executes it (eager, compile, function, xla, jit, xnnpack, ...).
        requires: importable module names the target needs, each with the pip extra to install.
        devices: devices the target can run on.
        dtype: the verification rule its outputs are judged by (a key of ``suite.verify.TOLERANCES``
            or a quantised rule: float16-weights, int8).
        options: the typed options the target module reads.
        export: for export targets, how the artifact is produced; None for targets built in-process.
        description: one line for ``bench list``.
    """

    id: str
    module: str
    family: str
    framework: str
    format: str
    runtime: str
    variant: str
    requires: tuple[tuple[str, str], ...]
    devices: tuple[str, ...] = ("cpu",)
    dtype: str = "float32"
    options: Options = field(default_factory=Options)
    export: Export | None = None
    description: str = ""


_ID_RE = re.compile(r"^(?:(?P<fw>[a-z0-9_]+):(?P<mode>[a-z0-9_-]+)"
                    r"|(?P<src>[a-z0-9_]+)>(?P<fmt>[a-z0-9_-]+)@(?P<rt>[a-z0-9_]+)(?:-(?P<rtv>[a-z0-9_-]+))?"
                    r"|keras\[(?P<backend>[a-z0-9_]+)\])$")


@dataclass(frozen=True)
class TargetId:
    """A parsed target id. ``variant`` is None where the id does not spell it (keras[backend], a runtime
    without a suffix)."""

    framework: str
    format: str
    runtime: str
    variant: str | None


def parse_target_id(target_id: str) -> TargetId:
    """Splits a target id per the grammar in the module docstring.

    Raises:
        ValueError: the id does not follow the grammar.
    """
    m = _ID_RE.match(target_id)
    if not m:
        raise ValueError(f"malformed target id {target_id!r}: expected framework:variant, "
                         "framework>format@runtime[-variant] or keras[backend]")
    if m["fw"]:
        return TargetId(m["fw"], "native", m["fw"], m["mode"])
    if m["src"]:
        return TargetId(m["src"], m["fmt"], m["rt"], m["rtv"])
    return TargetId("keras", "native", m["backend"], None)


def target(id: str, module: str, family: str, requires, *, variant: str | None = None, devices=("cpu",),
           dtype: str = "float32", options: Options = Options(), export: Export | None = None,
           description: str = "", framework: str | None = None, runtime: str | None = None) -> TargetInfo:
    """A TargetInfo whose framework, format and runtime come from its id (``framework`` / ``runtime``
    override them only for test targets whose ids name no framework, e.g. ``test:numpy``)."""
    tid = parse_target_id(id)
    variant = tid.variant or variant
    if not variant:
        raise ValueError(f"target {id}: the id does not name a variant, so one must be given")
    return TargetInfo(id, module, family, framework or tid.framework, tid.format, runtime or tid.runtime, variant,
                      tuple(requires), tuple(devices), dtype, options, export, description)


_TORCH = [("torch", "torch")]
_TF = [("tensorflow", "tensorflow")]
_JAX = [("jax", "jax")]
_LITERT = [("ai_edge_litert|tflite_runtime", "litert")]
_ORT = [("onnxruntime", "onnx")]
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
           options=OnnxOptions(), description="jax -> jax2tf -> tf2onnx -> ONNX Runtime (where tf2onnx can)",
           export=Export("jax2tf", "suite.targets.jax.export:to_onnx",
                         (("jax", "jax"), ("tensorflow", "tensorflow"), ("tf2onnx", "onnx")),
                         ("jax", "jaxlib", *_TF_DISTS, "tf2onnx", "onnx"))),
    *[target(f"tensorflow>{fmt}@{rt}", "suite.targets.runtimes.litert", "litert", _LITERT,
             variant="xnnpack" if xnn else "builtin", dtype=dtype, description=desc,
             # full int8 keeps causal attention's core in float (tensorflow/export.py); in options, so in the cache key
             options=LiteRTOptions(quant=quant, xnnpack=xnn,
                                   float_ops=("BATCH_MATMUL", "SOFTMAX") if quant == "full" else ()),
             export=Export("tensorflow", "suite.targets.tensorflow.export:to_tflite", (("tensorflow", "tensorflow"),),
                           _TF_DISTS))
      for fmt, rt, quant, dtype, xnn, desc in _TFLITE],
    target("jax>tflite@litert", "suite.targets.runtimes.litert", "litert", _LITERT, variant="xnnpack",
           options=LiteRTOptions(), description="jax -> jax2tf -> TFLite -> LiteRT (where it converts)",
           export=Export("jax2tf", "suite.targets.jax.export:to_tflite", (("jax", "jax"), ("tensorflow", "tensorflow")),
                         ("jax", "jaxlib", *_TF_DISTS))),
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
    "fault": "suite.targets.runtimes.hooks",
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
