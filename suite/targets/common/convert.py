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
