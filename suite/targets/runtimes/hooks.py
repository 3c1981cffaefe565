"""Runtime hooks of the runtime-only worker families (onnxruntime, litert, openvino, iree) and the NumPy test family.

They import no framework: ONNX Runtime and LiteRT take their thread counts per session / interpreter
from the profile (``ctx.threads``), and the OpenMP/BLAS variables every worker gets cover the rest. IREE's
task system is process-wide and configured once, before its first device: ``apply_threads`` does it.
"""
from __future__ import annotations


def worker_env(profile, family: str, threads: int) -> dict[str, str]:
    return {}


def pin_cores(profile, family: str, allowed: list[int]) -> tuple[int, ...] | None:
    return None


def apply_threads(family: str, threads: int) -> tuple[dict, list[str]]:
    if family == "onnxruntime":  # session.intra_op.allow_spinning is left at its default (README, "Threads")
        return {"intra_op_spinning": "default (on)"}, []
    if family == "iree":  # IREE's task system reads its topology once, at the first device: set it now
        from suite.targets.runtimes.iree import set_task_topology

        try:
            return {"iree_task_topology": " ".join(set_task_topology(threads))}, []
        except ImportError as e:
            return {}, [f"iree.runtime: {e}"]
    return {}, []
