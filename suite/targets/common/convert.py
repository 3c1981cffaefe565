"""Helpers every exporter shares: converter error lines, the ONNX checker, installed versions.
No framework import at module level."""
from __future__ import annotations

import importlib.metadata
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
