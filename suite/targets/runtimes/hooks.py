"""Runtime hooks of the runtime-only worker families (onnxruntime, litert) and the NumPy test family.

They import no framework: ONNX Runtime and LiteRT take their thread counts per session / interpreter
from the profile (``ctx.threads``), and the OpenMP/BLAS variables every worker gets cover the rest.
"""
from __future__ import annotations


def worker_env(profile, family: str, threads: int) -> dict[str, str]:
    return {}


def pin_cores(profile, family: str, allowed: list[int]) -> tuple[int, ...] | None:
    return None


def apply_threads(family: str, threads: int) -> tuple[dict, list[str]]:
    if family == "onnxruntime":  # session.intra_op.allow_spinning is left at its default (README, "Threads")
        return {"intra_op_spinning": "default (on)"}, []
    return {}, []
