"""Helpers every exporter shares: converter error lines, the ONNX checker, installed versions.
No framework import at module level."""
from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

from suite.targets.base import UnsupportedError


def first_line(e: BaseException) -> str:
    """``Type: the useful line`` of a converter's exception, at most 400 characters."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    # TFLite converter errors put the useful "error: ..." line after a location prefix.
    useful = [ln for ln in lines if "error:" in ln.lower()] or lines
    return f"{type(e).__name__}: {useful[0] if useful else ''}"[:400]


def dist_version(*names: str) -> str | None:
    """The installed version of the first of ``names`` that is installed (e.g. tensorflow-cpu, tensorflow)."""
    for n in names:
        try:
            return importlib.metadata.version(n)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def tf_version_key() -> dict:
    return {"tensorflow": dist_version("tensorflow-cpu", "tensorflow")}


def check_onnx(path: Path, converter: str) -> None:
    """Full ONNX checker (with strict type/shape inference): a converter that wrote an invalid graph is
    refused here, with its message, rather than at runtime load."""
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as e:
        raise UnsupportedError(f"{converter} wrote an invalid ONNX model: {first_line(e)}") from e


def import_openvino():
    """``openvino`` for converting, with its usage telemetry off.

    ``openvino.convert_model`` reports each conversion to Google Analytics through the
    ``openvino_telemetry`` package unless the user has a consent file saying no (``~/intel``); the suite
    never uses the network at run time and never writes into the user's home. With
    ``openvino_telemetry`` unimportable, OpenVINO's converter takes its own no-op stub (the path it
    takes where that package is not installed), so this process sends nothing.
    """
    import sys

    sys.modules.setdefault("openvino_telemetry", None)  # a None entry makes `import` raise ImportError
    import openvino

    return openvino


def openvino_convert(ov, source, **kwargs):
    """``ov.convert_model(source, **kwargs)``; an op the converter cannot translate is a refusal
    (:class:`UnsupportedError`) naming the ops and the frontend's reason, on one line."""
    try:
        return ov.convert_model(source, **kwargs)
    except Exception as e:  # noqa: BLE001 - OpConversionFailure and friends are not importable by name alike
        if type(e).__name__ != "OpConversionFailure":
            raise
        lines = [ln.strip() for ln in str(e).splitlines()]
        failed = [ln.removeprefix("-- ") for ln in lines if ln.startswith("-- Conversion is failed for:")]
        why = [ln for ln in lines if ln.startswith("[") and "]" in ln]  # "[PyTorch Frontend] Translation for ..."
        said = "; ".join(dict.fromkeys(failed + why)) or first_line(e)
        raise UnsupportedError(f"openvino.convert_model: {said}") from None


def iree_compile_flags(backend: str, target_cpu: str, device: str = "cpu", cuda_target: str = "sm_80") -> list[str]:
    """``iree-compile`` flags. CPU: one local HAL device, ``backend`` code generation for ``target_cpu``
    ("host": the exporting machine's CPU and its instruction-set extensions). CUDA: one cuda HAL device,
    kernels for ``cuda_target`` embedded as PTX (the driver compiles them for the GPU when they load)."""
    if device == "cuda":
        return ["--iree-hal-target-device=cuda", f"--iree-cuda-target={cuda_target}"]
    if device != "cpu":
        raise UnsupportedError(f"IREE routes are compiled for cpu or cuda, not {device}")
    return ["--iree-hal-target-device=local", f"--iree-hal-local-target-device-backends={backend}",
            f"--iree-llvmcpu-target-cpu={target_cpu}"]


def iree_message(e: BaseException) -> str:
    """The ``error:`` diagnostics of an ``iree-compile`` failure on one line, without their source locations
    and the op they print (the op name is in the message), else the exception's first line."""
    said = []
    for ln in str(e).splitlines():
        _, sep, msg = ln.partition("error: ")
        if sep:
            head = msg.split(": %", 1)[0].split(": \"", 1)[0].strip()
            named = re.search(r'<\{name = "([^"]+)"', msg)  # torch.operator "torch.aten.lstm.input": the real op
            said.append(f"{head} ({named[1]})" if named else head)
    return "; ".join(dict.fromkeys(said))[:400] if said else first_line(e)


def iree_compile(source, input_type: str, flags: list[str]) -> bytes:
    """``iree.compiler.compile_str`` with ``flags`` (:func:`iree_compile_flags`) -> the .vmfb bytes; a
    compiler refusal (an op it cannot legalize) is :class:`UnsupportedError` with the compiler's
    diagnostics, on one line."""
    import iree.compiler as ic

    try:
        return ic.compile_str(source, input_type=input_type, extra_args=flags)
    except ic.CompilerToolError as e:
        raise UnsupportedError(f"iree-compile {dist_version('iree-base-compiler')}: {iree_message(e)}") from None


def iree_artifact(out_dir: Path, source, input_type: str, options, device: str = "cpu") -> dict:
    """Compiles ``source`` (``input_type`` MLIR: stablehlo, torch) for ``device`` (cpu or cuda) into
    ``out_dir/model.vmfb``. Returns the manifest fields the IREE exporters share: artifact, ``iree`` (device,
    backend, target CPU or CUDA target, flags, and the CPU it was compiled on, which the runtime checks for
    target_cpu=host), the layout's suffix, versions."""
    from suite.targets.runtimes.iree import host_cpu

    path = out_dir / "model.vmfb"
    flags = iree_compile_flags(options.backend, options.target_cpu, device, options.cuda_target)
    path.write_bytes(iree_compile(source, input_type, flags))
    if device == "cuda":
        iree = {"device": "cuda", "backend": "cuda", "cuda_target": options.cuda_target, "flags": flags}
        layout = f"IREE vmfb, cuda {options.cuda_target} (PTX)"
    else:
        cpu = host_cpu()
        iree = {"device": "cpu", "backend": options.backend, "target_cpu": options.target_cpu, "compiled_on": cpu,
                "flags": flags}
        on = f" ({cpu['model']})" if options.target_cpu == "host" else ""
        layout = f"IREE vmfb, {options.backend} target-cpu={options.target_cpu}{on}"
    return {"artifact": path.name, "iree": iree, "layout": layout,
            "versions": {"iree-base-compiler": dist_version("iree-base-compiler")}}
