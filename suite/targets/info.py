"""The types of the target registry: typed options, the export spec, TargetInfo, and the one parser of ids.

A leaf module (no suite imports), so that the production registry (``suite.targets.registry``) and the
test-only one (``suite.targets.testing.registry``) both build on it without importing each other.

Target id grammar (stable; used identically in the CLI, Parquet, the dashboard and asv), parsed by
:func:`parse_target_id`, the only parser of ids:

    native run:       <framework>:<variant>                         torch:eager, jax:jit
    export + runtime: <framework>><format>@<runtime>[-<variant>]    torch>onnx@onnxruntime, tensorflow>tflite@litert-noxnnpack
    keras 3:          keras[<backend>]                              keras[jax]

A :class:`TargetInfo` built with :func:`target` takes its ``framework``, ``format`` and ``runtime`` from its
id through that parser, so the id and the fields can never disagree.
"""
from __future__ import annotations

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
class OpenVINOOptions(Options):
    precision: str = "f32"  # INFERENCE_PRECISION_HINT of the CPU plugin (f32: no silent bfloat16)


@dataclass(frozen=True)
class IREEOptions(Options):
    backend: str = "llvm-cpu"  # --iree-hal-local-target-device-backends of iree-compile (CPU profiles)
    target_cpu: str = "host"  # --iree-llvmcpu-target-cpu: "host" ties the .vmfb to the exporting machine's CPU
    # --iree-cuda-target for the cuda profile: IREE embeds PTX for it, which the driver compiles for the GPU
    # at load (any later architecture runs it), so one artifact serves every GPU from Ampere on
    cuda_target: str = "sm_80"


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
        same_artifact_as: the id of a target whose exporter produces exactly this target's artifact (the
            two differ only in how the runtime runs it, e.g. LiteRT with and without XNNPACK): the cell
            then runs that target's artifact, exported once for both.
        per_device: the artifact is compiled for the device of the profile that runs it (IREE: CPU code
            or CUDA kernels), so it is exported once per device and the device is part of its cache key;
            otherwise one artifact serves every profile.
    """

    family: str
    exporter: str
    requires: tuple[tuple[str, str], ...]
    converter_dists: tuple[str, ...]
    same_artifact_as: str | None = None
    per_device: bool = False


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
